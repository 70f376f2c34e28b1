// TensorFlow.js as the parts imgpipe uses, without the @tensorflow/tfjs umbrella (WebGL, tfjs-data, core-js):
// the ops, layers models (heads, TF.js backbones), graph models, and the plain-JavaScript CPU backend (tensors made
// before a backend is chosen); tfjs-load.ts registers WebAssembly and WebGPU. In Node each part's `main` is a CommonJS
// bundle sharing one engine and one kernel and gradient registry through tfjs-core's globals. tfjs-core's bundle
// registers no gradients; tfjs-layers' bundle registers all of them (its index imports tfjs-core's
// register_all_gradients), so training works as with the umbrella. Chained ops (`x.div(y)`) exist in Node only in the
// umbrella's bundle: imgpipe calls the ops as functions (`tf.div(x, y)`), and the Tf type has no chained ops, so
// tsc rejects them. tfjs-parts.test.ts checks both in a process that loads nothing else from TF.js.
import '@tensorflow/tfjs-backend-cpu';

export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
export * from '@tensorflow/tfjs-converter';

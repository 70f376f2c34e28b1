// TensorFlow.js as the parts imgpipe uses (the @tensorflow/tfjs umbrella also brings WebGL, tfjs-data and core-js):
// the core ops, layers models (heads, TF.js backbones), graph models, and the plain-JavaScript CPU backend that
// other backends fall back to for kernels they lack. WebAssembly and WebGPU are registered by tf.ts.
import '@tensorflow/tfjs-backend-cpu';

export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
export * from '@tensorflow/tfjs-converter';

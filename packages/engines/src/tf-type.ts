/**
 * The TensorFlow.js namespace as loadTf returns it. In Node the @tensorflow/tfjs package is what registers the
 * gradients (fine-tuning) and chained ops: tfjs-core's own Node build has neither, so the parts alone do not do.
 */
export type Tf = typeof import('@tensorflow/tfjs');

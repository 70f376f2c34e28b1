/** The TensorFlow.js namespace as loadTf returns it. */
export type Tf = typeof import('@tensorflow/tfjs');

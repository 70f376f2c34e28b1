/** The TensorFlow.js namespace as loadTf returns it (core, layers and converter). */
export type Tf = typeof import('./tfjs.js');

/** The TensorFlow.js namespace as loadTf returns it: core, layers and converter (tfjs-parts.ts), no chained ops. */
export type Tf = typeof import('./tfjs-parts.js');

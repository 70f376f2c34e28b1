export { serveCli } from './cli.js';
export { runServe, type ServeHandle } from './serve.js';
export { createModelLoader, downloadPublishedModel, servedModel } from './model-loader.js';

export { serveCli } from './cli.js';
export { runServe, type ServeOptions, type ServeHandle, type ServedModel, type ModelLoader } from './serve.js';
export { createModelLoader, downloadPublishedModel, servedModel, modelNameFor, type ModelLoaderOptions } from './model-loader.js';
export { Batcher, type BatcherOptions } from './batcher.js';
export { createClassifier, type Classifier, type ClassifierModel, type Prediction } from './classifier.js';
export { annotateView, type EchoMode } from './annotate.js';
export { Registry, Counter, Gauge, Histogram, PROMETHEUS_CONTENT_TYPE } from './metrics.js';
export { HttpError, UnavailableError } from './http-error.js';

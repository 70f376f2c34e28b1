export * from './temp-dir.js';
export * from './s3-server.js';
export * from './faulty-proxy.js';
export * from './image-set.js';
export * from './tiny-models.js';
export * from './bad-images.js';
export * from './resnet50-model.js';
export * from './synthetic-dataset.js';

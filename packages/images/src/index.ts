export * from './image.js';
export * from './image-format.js';
export * from './decode-view.js';
export * from './decode-pool.js';

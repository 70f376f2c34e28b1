export * from './image.js';
export * from './image-format.js';

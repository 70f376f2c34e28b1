export * from './file-digest.js';
export * from './s3.js';
export * from './s3-download.js';
export * from './s3-objects.js';
export * from './s3-upload.js';
export * from './s3-multipart.js';
export * from './s3-publication.js';
export * from './s3-conditional.js';

export { CONVERTER_VERSION, convertTfjsLayers } from './tfjs-to-onnx.js';
export { UnsupportedLayerError } from './tfjs-onnx-context.js';

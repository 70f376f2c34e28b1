export { CONVERTER_VERSION, convertTfjsLayers, type ConvertedTfjs, type ConvertTfjsOptions } from './tfjs-to-onnx.js';
export { UnsupportedLayerError } from './tfjs-onnx-context.js';
export { ACTIVATIONS, activationName } from './tfjs-onnx-activations.js';
export { LAYER_CONVERTERS } from './tfjs-onnx-layers.js';

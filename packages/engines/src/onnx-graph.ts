import onnxProto from 'onnx-proto';
import { InputError, UsageError } from '@imgpipe/kit';

/** Reading and editing ONNX graphs with onnx-proto: value names, graph outputs, the global-pool feature layer. */
export const { onnx } = onnxProto;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
type Node = import('onnx-proto').onnx.INodeProto;

function graphOf(model: ModelProto): import('onnx-proto').onnx.IGraphProto {
  return model.graph ?? {};
}
function nodesOf(model: ModelProto): Node[] {
  return graphOf(model).node ?? [];
}

export function decodeOnnx(bytes: Uint8Array, source: string): ModelProto {
  try {
    const model = onnx.ModelProto.decode(bytes);
    if (nodesOf(model).length === 0) throw new Error('no graph nodes');
    return model;
  } catch (error) {
    throw new InputError(`${source} is not a readable ONNX model (${(error as Error).message})`, { cause: error });
  }
}

export function graphOutputs(model: ModelProto): string[] {
  return (graphOf(model).output ?? []).map((o) => o.name ?? '');
}

/** Every value name a node produces. */
export function valueNames(model: ModelProto): Set<string> {
  return new Set(nodesOf(model).flatMap((n) => n.output ?? []));
}

/**
 * The feature layer of an ImageNet classifier: the output of its last global pooling node (GlobalAveragePool, a
 * ReduceMean near the end as tf2onnx writes it, or an int8 model's QLinearGlobalAveragePool), followed through
 * the reshapes after it (Flatten, Reshape, Squeeze) and, for a quantized pool, its DequantizeLinear, so the value
 * is float; a quantized pool that no DequantizeLinear follows gets one (added to `model`), from the pool's own
 * output scale and zero point. Undefined when there is none.
 */
export function globalPoolOutput(model: ModelProto): string | undefined {
  const nodes = nodesOf(model);
  const PASS_THROUGH = new Set(['Flatten', 'Reshape', 'Squeeze']);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    const quantized = node.opType === 'QLinearGlobalAveragePool';
    if (!(quantized || node.opType === 'GlobalAveragePool' || (node.opType === 'ReduceMean' && nodes.length - i < 8))) continue;
    let value = node.output?.[0];
    let float = !quantized;
    let lastFloat = float ? value : undefined;
    for (let step = 0; value && step < 4; step++) {
      const next = nodes.find((n) => n.input?.[0] === value && (PASS_THROUGH.has(n.opType ?? '') || (!float && n.opType === 'DequantizeLinear')));
      if (!next) break;
      if (next.opType === 'DequantizeLinear') float = true;
      value = next.output?.[0];
      if (float) lastFloat = value;
    }
    if (lastFloat) return lastFloat;
    const [pooled, scale, zeroPoint] = [node.output?.[0], node.input?.[3], node.input?.[4]];
    if (!pooled || !scale) return undefined;
    const dequantized = `${pooled}_imgpipe_dequantized`;
    graphOf(model).node!.push(
      onnx.NodeProto.create({
        opType: 'DequantizeLinear',
        name: dequantized,
        input: zeroPoint ? [pooled, scale, zeroPoint] : [pooled, scale],
        output: [dequantized],
      }),
    );
    return dequantized;
  }
  return undefined;
}

/**
 * Make `name` a graph output (float tensor, shape left to inference) so ONNX Runtime can fetch it. Returns the
 * re-encoded model, or the original bytes when it already is an output.
 */
export function exposeOutput(model: ModelProto, bytes: Uint8Array, name: string, source: string): Uint8Array {
  if (graphOutputs(model).includes(name)) return bytes;
  if (!valueNames(model).has(name)) {
    const sample = [...valueNames(model)].slice(-5).join(', ');
    throw new UsageError(
      `--feature-layer '${name}' is not a value in ${source} (graph outputs: ${graphOutputs(model).join(', ')}; last values: ${sample})`,
    );
  }
  model.graph!.output!.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
  return onnx.ModelProto.encode(model).finish();
}

/** The first graph input that is not an initializer: name and dims (numbers, or undefined when symbolic). */
export function graphInput(model: ModelProto): { name: string; dims: (number | undefined)[] } {
  const initializers = new Set((graphOf(model).initializer ?? []).map((t) => t.name));
  const input = (graphOf(model).input ?? []).find((i) => !initializers.has(i.name));
  if (!input) throw new InputError('the ONNX model has no graph input');
  const dims = (input.type?.tensorType?.shape?.dim ?? []).map((d) => {
    const value = d.dimValue === null || d.dimValue === undefined ? undefined : Number(d.dimValue);
    return value && value > 0 ? value : undefined;
  });
  return { name: input.name!, dims };
}

/** imgpipe's own metadata keys in metadata_props (e.g. imgpipe.preprocess). */
export function metadataProp(model: ModelProto, key: string): string | undefined {
  return (model.metadataProps ?? []).find((p) => p.key === key)?.value ?? undefined;
}

import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

type NodeProto = import('onnx-proto').onnx.INodeProto;
type TensorProto = import('onnx-proto').onnx.ITensorProto;

/** An attribute value: integer arrays are INTS, integers INT, { float } FLOAT. */
type AttrValue = number[] | number | { float: number };

const { AttributeType } = onnx.AttributeProto;
const { DataType } = onnx.TensorProto;

function attribute(name: string, value: AttrValue): import('onnx-proto').onnx.IAttributeProto {
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if (typeof value === 'number') return { name, type: AttributeType.INT, i: value };
  return { name, type: AttributeType.FLOAT, f: value.float };
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

/** Builds one ONNX graph: nodes in the order added, initializers, unique value names. */
export class OnnxGraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly names = new Set<string>();

  /** The nodes so far, in order (for passes over the finished graph). */
  get graphNodes(): readonly NodeProto[] {
    return this.nodes;
  }

  /** A value name not used yet, derived from base. */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  /** Add a node; returns its output's name (`output` exactly when given, else unique from `base`). */
  node(op: string, inputs: string[], options: { base?: string; output?: string; attrs?: Record<string, AttrValue> } = {}): string {
    const output = options.output ?? this.unique(`${options.base ?? op}:${op.toLowerCase()}`);
    if (options.output) this.names.add(output);
    const attrs = Object.entries(options.attrs ?? {}).map(([name, value]) => attribute(name, value));
    this.nodes.push({ name: output, opType: op, input: inputs, output: [output], attribute: attrs });
    return output;
  }

  floats(base: string, dims: number[], data: Float32Array): string {
    const name = this.unique(base);
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, rawData: bytesOf(data) });
    return name;
  }

  int64s(base: string, values: number[]): string {
    const name = this.unique(base);
    const data = BigInt64Array.from(values.map(BigInt));
    this.initializers.push({ name, dims: [values.length], dataType: DataType.INT64, rawData: bytesOf(data) });
    return name;
  }

  scalar(base: string, value: number): string {
    const name = this.unique(base);
    this.initializers.push({ name, dims: [], dataType: DataType.FLOAT, rawData: bytesOf(Float32Array.of(value)) });
    return name;
  }

  /** The model: one float input and one float output, dims as numbers or symbolic names. */
  encode(options: {
    input: { name: string; dims: (number | string)[] };
    output: { name: string; dims: (number | string)[] };
    metadata: Record<string, string>;
    name: string;
  }): Uint8Array {
    const valueInfo = (v: { name: string; dims: (number | string)[] }) => ({
      name: v.name,
      type: {
        tensorType: { elemType: DataType.FLOAT, shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
      },
    });
    const model = onnx.ModelProto.create({
      irVersion: 7,
      producerName: 'imgpipe',
      opsetImport: [{ domain: '', version: 13 }],
      metadataProps: Object.entries(options.metadata).map(([key, value]) => ({ key, value })),
      graph: {
        name: options.name,
        input: [valueInfo(options.input)],
        output: [valueInfo(options.output)],
        initializer: this.initializers,
        node: this.nodes,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { globalPoolOutput, onnx, valueNames } from './onnx-graph.js';

const model = (nodes: { op: string; inputs: string[]; output: string }[]) =>
  onnx.ModelProto.create({ graph: { node: nodes.map((n) => onnx.NodeProto.create({ opType: n.op, input: n.inputs, output: [n.output] })) } });

describe('globalPoolOutput: the feature layer of an ImageNet classifier', () => {
  it('a float pool, followed through its reshapes to the classifier', () => {
    const m = model([
      { op: 'Relu', inputs: ['x'], output: 'r' },
      { op: 'GlobalAveragePool', inputs: ['r'], output: 'pool' },
      { op: 'Reshape', inputs: ['pool', 'shape'], output: 'flat' },
      { op: 'Gemm', inputs: ['flat', 'w', 'b'], output: 'logits' },
    ]);
    assert.equal(globalPoolOutput(m), 'flat');
  });

  it('an int8 pool is taken after its DequantizeLinear', () => {
    const m = model([
      { op: 'QLinearGlobalAveragePool', inputs: ['q', 'xs', 'xz', 'ys', 'yz'], output: 'qpool' },
      { op: 'Flatten', inputs: ['qpool'], output: 'qflat' },
      { op: 'DequantizeLinear', inputs: ['qflat', 'ys', 'yz'], output: 'features' },
      { op: 'Gemm', inputs: ['features', 'w', 'b'], output: 'logits' },
    ]);
    assert.equal(globalPoolOutput(m), 'features');
  });

  it('an int8 pool that feeds a quantized classifier gets a DequantizeLinear of its own output scale', () => {
    const m = model([
      { op: 'QLinearGlobalAveragePool', inputs: ['q', 'xs', 'xz', 'ys', 'yz'], output: 'qpool' },
      { op: 'QLinearMatMul', inputs: ['qpool', 'ys', 'yz', 'w', 'ws', 'wz', 'os', 'oz'], output: 'qlogits' },
    ]);
    const name = globalPoolOutput(m)!;
    assert.ok(valueNames(m).has(name));
    const added = m.graph!.node!.at(-1)!;
    assert.equal(added.opType, 'DequantizeLinear');
    assert.deepEqual(added.input, ['qpool', 'ys', 'yz']);
  });

  it('none: undefined', () => {
    assert.equal(globalPoolOutput(model([{ op: 'Relu', inputs: ['x'], output: 'y' }])), undefined);
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { loadBackbone, formatDeviceList, listDevices, parseDevice, loadTf } from '@imgpipe/engines';
import { UsageError, createLogger } from '@imgpipe/kit';

// This machine (and CI) has no GPU, no Vulkan, no @tensorflow/tfjs-node(-gpu) and no onnxruntime CUDA provider:
// every explicit request for one must fail with a message that says what is missing and how to install it.
describe('devices', () => {
  let temp: TempDir;
  let onnxPath: string;
  before(async () => {
    temp = await makeTempDir('imgpipe-device-');
    onnxPath = (await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: 8, format: 'onnx' })).path;
  });
  after(() => temp.remove());

  it('parseDevice accepts the five names and rejects others naming the flag', () => {
    for (const d of ['auto', 'cpu', 'wasm', 'webgpu', 'cuda']) assert.equal(parseDevice(d), d);
    assert.throws(() => parseDevice('gpu'), /expected --device to be one of auto, cpu, wasm, webgpu, cuda, got 'gpu'/);
  });

  it('TF.js cuda without @tensorflow/tfjs-node-gpu is a usage error with install instructions', async () => {
    await assert.rejects(loadTf('cuda'), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /@tensorflow\/tfjs-node-gpu is not installed/);
      assert.match(error.message, /npm i @tensorflow\/tfjs-node-gpu/);
      return true;
    });
  });

  it('TF.js webgpu without a GPU adapter is a usage error, not a fallback', async () => {
    await assert.rejects(loadTf('webgpu'), (error: Error) => error instanceof UsageError && /--device webgpu is not available/.test(error.message));
  });

  it('TF.js cpu without tfjs-node uses WebAssembly and says so; auto says what it chose and why', async () => {
    const lines: string[] = [];
    const log = createLogger({ name: 't', stream: { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream });
    const cpu = await loadTf('cpu', log);
    assert.equal(cpu.backend, 'wasm');
    assert.equal(cpu.device, 'cpu');
    assert.match(lines.join(''), /using WebAssembly \(@tensorflow\/tfjs-node is not installed/);
    lines.length = 0;
    const auto = await loadTf('auto', log);
    assert.equal(auto.device, 'wasm');
    assert.equal(auto.tf.getBackend(), 'wasm');
    assert.match(lines.join(''), /--device auto chose wasm.*cuda: @tensorflow\/tfjs-node-gpu is not installed.*webgpu: /);
  });

  it('ONNX Runtime cuda without its CUDA provider is a usage error with install instructions', async () => {
    await assert.rejects(loadBackbone(onnxPath, { device: 'cuda' }), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /--device cuda is not available for ONNX Runtime.*ONNXRUNTIME_NODE_INSTALL_CUDA/);
      return true;
    });
  });

  it('ONNX Runtime webgpu without an adapter is a usage error; auto falls to cpu and logs why', async () => {
    await assert.rejects(
      loadBackbone(onnxPath, { device: 'webgpu', preprocess: 'none' }),
      (error: Error) => error instanceof UsageError && /webgpu/.test(error.message),
    );
    const lines: string[] = [];
    const log = createLogger({ name: 't', stream: { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream });
    const backbone = await loadBackbone(onnxPath, { device: 'auto', preprocess: 'none', log });
    assert.equal(backbone.device, 'cpu');
    assert.match(lines.join(''), /--device auto: ONNX Runtime on cpu.*cuda: provider not installed/);
    await backbone.dispose();
  });

  it('listDevices covers both engines, and formatDeviceList prints one line each', async () => {
    const list = await listDevices();
    const key = (d: { device: string; engine: string }) => `${d.engine}:${d.device}`;
    assert.deepEqual(list.map(key).sort(), [
      'onnxruntime:cpu',
      'onnxruntime:cuda',
      'onnxruntime:webgpu',
      'tfjs:cpu',
      'tfjs:cuda',
      'tfjs:wasm',
      'tfjs:webgpu',
    ]);
    assert.equal(list.find((d) => key(d) === 'tfjs:wasm')!.available, true);
    assert.equal(list.find((d) => key(d) === 'tfjs:cuda')!.available, false);
    assert.equal(list.find((d) => key(d) === 'onnxruntime:cuda')!.available, false);
    const text = formatDeviceList(list);
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, list.length + 1);
    assert.match(lines[0]!, /^device\s+engine\s+available\s+detail$/);
    assert.match(text, /cuda\s+tfjs\s+no\s+@tensorflow\/tfjs-node-gpu is not installed/);
  });
});

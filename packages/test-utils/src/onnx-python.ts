import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** Debian's python3 with python3-onnx and python3-opencv (installed by .ci/run): runtimes independent of imgpipe's. */
export const DEBIAN_PYTHON = '/usr/bin/python3';

const SCRIPT = `
import json, sys
import numpy as np, onnx, cv2
model_path, pixels_path, count, size, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
model = onnx.load(model_path)
onnx.checker.check_model(model, full_check=True)
pixels = np.fromfile(pixels_path, dtype=np.uint8).reshape(count, size, size, 3)
net = cv2.dnn.readNetFromONNX(model_path)
net.setInput(pixels)
probs = np.asarray(net.forward(), dtype=np.float32)
probs.tofile(out_path)
meta = {p.key: p.value for p in model.metadata_props}
print(json.dumps({'onnx': onnx.__version__, 'opencv': cv2.__version__, 'opset': [o.version for o in model.opset_import if o.domain == ''][0], 'shape': list(probs.shape), 'metadata': meta, 'ops': sorted({n.op_type for n in model.graph.node}), 'op_counts': {t: sum(1 for n in model.graph.node if n.op_type == t) for t in {n.op_type for n in model.graph.node}}}))
`;

export interface PythonOnnxResult {
  /** Versions of the onnx package (whose checker passed) and OpenCV. */
  onnx: string;
  opencv: string;
  opset: number;
  /** OpenCV DNN's output for the pixels, [count, classes] row-major. */
  probabilities: Float32Array;
  shape: number[];
  metadata: Record<string, string>;
  /** The op types the graph uses, and how many nodes of each. */
  ops: string[];
  op_counts: Record<string, number>;
}

/**
 * onnx.checker.check_model(full_check=True) on `modelPath`, then the model on OpenCV's DNN module
 * (cv2.dnn.readNetFromONNX) for count uint8 RGB NHWC images of size x size. Throws with Python's stderr on failure.
 */
export async function runOnnxInPython(modelPath: string, pixels: Uint8Array, count: number, size: number): Promise<PythonOnnxResult> {
  const dir = await mkdtemp(join(tmpdir(), 'imgpipe-onnx-python-'));
  try {
    await writeFile(join(dir, 'pixels.bin'), pixels);
    const { stdout } = await promisify(execFile)(
      DEBIAN_PYTHON,
      ['-c', SCRIPT, modelPath, join(dir, 'pixels.bin'), String(count), String(size), join(dir, 'out.bin')],
      { maxBuffer: 1 << 24 },
    );
    const info = JSON.parse(stdout.trim().split('\n').at(-1)!) as Omit<PythonOnnxResult, 'probabilities'>;
    const bytes = await readFile(join(dir, 'out.bin'));
    return { ...info, probabilities: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

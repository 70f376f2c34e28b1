import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { cpuThreads, INSTALL_HINTS, webgpuUnlikely, type ConcreteDevice, type Device, type DeviceStatus } from './device.js';
import { messageOf, UsageError, silentLogger, type Logger } from '@imgpipe/kit';

/**
 * The only importer of onnxruntime-node: loads it lazily, maps devices to execution providers, and creates
 * sessions with one intra-op thread per core.
 */
type Ort = typeof import('onnxruntime-node');
type OrtSession = import('onnxruntime-node').InferenceSession;

let ortModule: Ort | undefined;
export async function loadOrt(): Promise<Ort> {
  disableOrtTelemetry();
  ortModule ??= await import('onnxruntime-node');
  return ortModule;
}

/**
 * onnxruntime-node 1.30's Linux build starts its telemetry client (Microsoft's 1DS SDK, core/platform/posix/telemetry.cc)
 * with every ONNX Runtime environment, which opens an empty $TMPDIR/mat-debug-<pid>.log in each process and leaves
 * it there. ORT_DISABLE_TELEMETRY=1, read when the environment is created, turns the client off; a value the user
 * set is kept. Native code reads the process environment, which only the main thread's process.env writes through
 * to, so this runs in the main thread before any session is created there or in a worker.
 */
export function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
}

/** Execution providers for a device. ONNX Runtime in Node has no wasm provider: wasm and cpu both use 'cpu'. */
function executionProvidersFor(device: ConcreteDevice): string[] {
  switch (device) {
    case 'cuda':
      return ['cuda', 'cpu'];
    case 'webgpu':
      return ['webgpu', 'cpu'];
    default:
      return ['cpu'];
  }
}

/** Whether onnxruntime-node's CUDA provider library is on disk (it comes from NuGet at install time, optionally). */
export function ortCudaInstalled(): boolean {
  try {
    const root = dirname(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')));
    const dir = join(root, 'bin', 'napi-v6', process.platform, process.arch);
    return readdirSync(dir).some((f) => f.includes('onnxruntime_providers_cuda'));
  } catch {
    return false;
  }
}

export async function ortDeviceStatus(): Promise<DeviceStatus[]> {
  const ort = await loadOrt();
  const supported = new Map(ort.listSupportedBackends().map((b) => [b.name, b.bundled]));
  const version = ort.env.versions.node ?? ort.env.versions.common ?? '';
  const cuda = ortCudaInstalled();
  return [
    { device: 'cpu', engine: 'onnxruntime', available: true, detail: `onnxruntime-node ${version} CPU provider, ${cpuThreads()} intra-op threads` },
    {
      device: 'webgpu',
      engine: 'onnxruntime',
      available: supported.has('webgpu'),
      detail: supported.has('webgpu')
        ? `WebGPU provider bundled (needs a GPU adapter at run time: ${INSTALL_HINTS.webgpu})`
        : 'this onnxruntime-node build has no WebGPU provider',
    },
    {
      device: 'cuda',
      engine: 'onnxruntime',
      available: cuda,
      detail: cuda ? 'CUDA provider installed' : `CUDA provider not installed: ${INSTALL_HINTS.ortCuda}`,
    },
  ];
}

interface OnnxSession {
  session: OrtSession;
  device: ConcreteDevice;
}

interface OnnxSessionOptions {
  /** Idle intra-op threads sleep rather than spin (see LoadBackboneOptions.sharedCpu). */
  sharedCpu?: boolean;
}

async function tryCreate(model: Uint8Array, device: ConcreteDevice, options: OnnxSessionOptions): Promise<OrtSession> {
  const ort = await loadOrt();
  return ort.InferenceSession.create(model, {
    executionProviders: executionProvidersFor(device),
    intraOpNumThreads: cpuThreads(),
    graphOptimizationLevel: 'all',
    // Session config key session.intra_op.allow_spinning (onnxruntime_session_options_config_keys.h).
    ...(options.sharedCpu ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
  });
}

/**
 * A session for an ONNX model on a device. auto tries cuda (when installed), then webgpu, then cpu, and logs the
 * choice; an explicit device that cannot be used is a UsageError saying why.
 */
export async function createOnnxSession(
  model: Uint8Array,
  device: Device,
  log: Logger = silentLogger,
  options: OnnxSessionOptions = {},
): Promise<OnnxSession> {
  if (device === 'cuda' && !ortCudaInstalled()) {
    throw new UsageError(`--device cuda is not available for ONNX Runtime: ${INSTALL_HINTS.ortCuda}`);
  }
  if (device === 'wasm') log.info('ONNX Runtime has no WebAssembly provider in Node: the ONNX backbone runs on its CPU provider');
  if (device !== 'auto') {
    try {
      return { session: await tryCreate(model, device, options), device };
    } catch (error) {
      if (device === 'cpu' || device === 'wasm') throw error;
      throw new UsageError(`--device ${device} is not available for ONNX Runtime: ${messageOf(error)}`, { cause: error });
    }
  }
  const skipped: string[] = [];
  const order: ConcreteDevice[] = ['cuda', 'webgpu'];
  for (const candidate of order) {
    if (candidate === 'cuda' && !ortCudaInstalled()) {
      skipped.push('cuda: provider not installed');
      continue;
    }
    const noGpu = candidate === 'webgpu' ? webgpuUnlikely() : undefined;
    if (noGpu) {
      skipped.push(`webgpu: ${noGpu}`);
      continue;
    }
    try {
      const session = await tryCreate(model, candidate, options);
      log.info(`--device auto: ONNX Runtime on ${candidate}${skipped.length ? ` (skipped ${skipped.join('; ')})` : ''}`);
      return { session, device: candidate };
    } catch (error) {
      skipped.push(`${candidate}: ${messageOf(error).split('\n')[0]}`);
    }
  }
  log.info(`--device auto: ONNX Runtime on cpu, ${cpuThreads()} threads (skipped ${skipped.join('; ')})`);
  return { session: await tryCreate(model, 'cpu', options), device: 'cpu' };
}

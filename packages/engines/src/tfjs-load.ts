import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cpuThreads, INSTALL_HINTS, webgpuUnlikely, type ConcreteDevice, type Device, type DeviceStatus } from './device.js';
import { messageOf, UsageError, silentLogger, type Logger } from '@imgpipe/kit';

/**
 * The only importer of TensorFlow.js backends. `loadTf(device)` loads TF.js as its parts (tfjs-parts.ts: core, layers,
 * converter, cpu), registers and selects the backend for the device, and returns tf. The native packages
 * (@tensorflow/tfjs-node, -gpu) are optional: they are imported with a non-literal specifier only when a user
 * installed them.
 */
import type { Tf } from './tfjs-parts-type.js';

export type { Tf } from './tfjs-parts-type.js';

interface LoadedTf {
  tf: Tf;
  /** The tf backend name: 'tensorflow' (tfjs-node / -gpu), 'wasm' or 'webgpu'. */
  backend: string;
  device: ConcreteDevice;
}

const require = createRequire(import.meta.url);

/** Import an optional package by a non-literal name, so bundlers and tsc do not require it. */
async function importOptional(name: string): Promise<{ module?: unknown; error?: string }> {
  try {
    const url = pathToFileURL(require.resolve(name)).href;
    return { module: await import(url) };
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') return { error: `${name} is not installed` };
    return { error: `${name} is installed but failed to load: ${messageOf(error)}` };
  }
}

let tfModule: Tf | undefined;
let wasmRegistered = false;
let webgpuRegistered = false;
let webgpuError: string | undefined;

async function baseTf(): Promise<Tf> {
  tfModule ??= await import('./tfjs-parts.js');
  return tfModule;
}

/** The directory holding tfjs-backend-wasm's .wasm files, as a prefix for setWasmPaths. */
function wasmDir(): string {
  return `${join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')}/`;
}

async function useWasm(): Promise<LoadedTf> {
  const tf = await baseTf();
  if (!wasmRegistered) {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(wasmDir());
    // Stock kernels only: train's fine-tuning adds its own (@imgpipe/training-kernels' registerTrainingKernels).
    wasmRegistered = true;
  }
  if (!(await tf.setBackend('wasm'))) throw new UsageError('the TF.js WebAssembly backend failed to initialise (--device wasm)');
  await tf.ready();
  return { tf, backend: 'wasm', device: 'wasm' };
}

async function useNative(name: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu', device: ConcreteDevice): Promise<LoadedTf | string> {
  const loaded = await importOptional(name);
  if (!loaded.module) return loaded.error!;
  // tfjs-node re-exports tf with its 'tensorflow' backend registered on it: use that instance.
  const tf = loaded.module as Tf;
  if (!(await tf.setBackend('tensorflow'))) return `${name} loaded but its 'tensorflow' backend failed to initialise`;
  await tf.ready();
  tfModule = tf;
  return { tf, backend: 'tensorflow', device };
}

/** Set up Dawn (webgpu package) as navigator.gpu, then register tfjs-backend-webgpu. Returns why not, or undefined. */
async function setupWebgpu(): Promise<string | undefined> {
  if (webgpuRegistered) return undefined;
  if (webgpuError) return webgpuError;
  try {
    const webgpu = await importOptional('webgpu');
    if (!webgpu.module) {
      webgpuError = `${webgpu.error}; ${INSTALL_HINTS.tfjsWebgpu}`;
      return webgpuError;
    }
    const dawn = webgpu.module as { create(flags: string[]): GPU; globals: object };
    const g = globalThis as Record<string, unknown>;
    Object.assign(globalThis, dawn.globals);
    if (!(g.navigator as { gpu?: unknown } | undefined)?.gpu) {
      Object.defineProperty(globalThis, 'navigator', { value: { gpu: dawn.create([]) }, configurable: true, writable: true });
    }
    const adapter = await withTimeout((g.navigator as { gpu: GPU }).gpu.requestAdapter(), 20_000);
    if (!adapter) {
      webgpuError = `no WebGPU adapter found; ${INSTALL_HINTS.webgpu}`;
      return webgpuError;
    }
    await baseTf();
    const backend = await importOptional('@tensorflow/tfjs-backend-webgpu');
    if (!backend.module) {
      webgpuError = `${backend.error}; ${INSTALL_HINTS.tfjsWebgpu}`;
      return webgpuError;
    }
    webgpuRegistered = true;
    return undefined;
  } catch (error) {
    webgpuError = `WebGPU (Dawn) failed: ${messageOf(error)}; ${INSTALL_HINTS.webgpu}`;
    return webgpuError;
  }
}

interface GPU {
  requestAdapter(): Promise<unknown>;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${ms / 1000}s`)), ms);
      timer.unref();
    }),
  ]);
}

async function useWebgpu(): Promise<LoadedTf | string> {
  const why = await setupWebgpu();
  if (why) return why;
  const tf = await baseTf();
  if (!(await tf.setBackend('webgpu'))) return 'tfjs-backend-webgpu registered but failed to initialise';
  await tf.ready();
  return { tf, backend: 'webgpu', device: 'webgpu' };
}

/**
 * TensorFlow.js on a device. cuda = @tensorflow/tfjs-node-gpu; cpu = @tensorflow/tfjs-node when installed, else
 * WebAssembly; wasm; webgpu = Dawn; auto = the best available, logged with why. An explicit device that is not
 * available is a UsageError saying what is missing, never a silent fallback.
 */
export async function loadTf(device: Device, log: Logger = silentLogger): Promise<LoadedTf> {
  const known = resolved.get(device);
  if (known) {
    // Same answer as before (and the same log line is not repeated); re-select it if another call switched backends.
    if (known.tf.getBackend() !== known.backend) await known.tf.setBackend(known.backend);
    return known;
  }
  const loaded = await resolveTf(device, log);
  resolved.set(device, loaded);
  return loaded;
}

const resolved = new Map<Device, LoadedTf>();

async function resolveTf(device: Device, log: Logger): Promise<LoadedTf> {
  switch (device) {
    case 'wasm':
      return useWasm();
    case 'cpu': {
      const native = await useNative('@tensorflow/tfjs-node', 'cpu');
      if (typeof native !== 'string') return native;
      log.info(`TF.js device cpu: using WebAssembly (${native}; for the faster native CPU backend ${INSTALL_HINTS.tfjsNode})`);
      return { ...(await useWasm()), device: 'cpu' };
    }
    case 'cuda': {
      const native = await useNative('@tensorflow/tfjs-node-gpu', 'cuda');
      if (typeof native !== 'string') return native;
      throw new UsageError(`--device cuda is not available for TF.js: ${native}; ${INSTALL_HINTS.tfjsNodeGpu}; or use --device webgpu, cpu or auto`);
    }
    case 'webgpu': {
      const loaded = await useWebgpu();
      if (typeof loaded !== 'string') return loaded;
      throw new UsageError(`--device webgpu is not available: ${loaded}; use --device cpu or auto`);
    }
    case 'auto': {
      const reasons: string[] = [];
      for (const [name, attempt] of [
        ['cuda', () => useNative('@tensorflow/tfjs-node-gpu', 'cuda')],
        ['cpu (tfjs-node)', () => useNative('@tensorflow/tfjs-node', 'cpu')],
        ['webgpu', () => Promise.resolve(webgpuUnlikely() ?? useWebgpu())],
      ] as const) {
        const loaded = await attempt();
        if (typeof loaded !== 'string') {
          log.info(
            `--device auto chose ${loaded.device} (TF.js backend ${loaded.backend})${reasons.length ? `; skipped: ${reasons.join('; ')}` : ''}`,
          );
          return loaded;
        }
        reasons.push(`${name}: ${loaded}`);
      }
      const loaded = await useWasm();
      log.info(`--device auto chose wasm (TF.js WebAssembly, single-threaded per worker); skipped: ${reasons.join('; ')}`);
      return loaded;
    }
  }
}

/** TF.js rows of --list-devices. */
export async function probeTfDevices(): Promise<DeviceStatus[]> {
  const gpu = await importOptional('@tensorflow/tfjs-node-gpu');
  const native = await importOptional('@tensorflow/tfjs-node');
  const webgpu = await setupWebgpu();
  const threads = cpuThreads();
  return [
    {
      device: 'cuda',
      engine: 'tfjs',
      available: Boolean(gpu.module),
      detail: gpu.module ? '@tensorflow/tfjs-node-gpu (libtensorflow with CUDA)' : `${gpu.error}: ${INSTALL_HINTS.tfjsNodeGpu}`,
    },
    {
      device: 'cpu',
      engine: 'tfjs',
      available: true,
      detail: native.module
        ? '@tensorflow/tfjs-node (native libtensorflow)'
        : `WebAssembly, ${threads} worker threads (${native.error}; for native speed ${INSTALL_HINTS.tfjsNode})`,
    },
    {
      device: 'wasm',
      engine: 'tfjs',
      available: true,
      detail: `@tensorflow/tfjs-backend-wasm, single-threaded in Node: ${threads} worker threads for TF.js backbones`,
    },
    { device: 'webgpu', engine: 'tfjs', available: !webgpu, detail: webgpu ?? '@tensorflow/tfjs-backend-webgpu on Dawn (webgpu package)' },
  ];
}

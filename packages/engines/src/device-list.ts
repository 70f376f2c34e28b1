import type { DeviceStatus } from './device.js';

/** One line per device and engine: available or not, and why. */
export function formatDeviceList(list: readonly DeviceStatus[]): string {
  const width = Math.max(...list.map((d) => d.device.length), 6);
  const engineWidth = Math.max(...list.map((d) => d.engine.length), 6);
  const lines = list.map((d) => `${d.device.padEnd(width)}  ${d.engine.padEnd(engineWidth)}  ${(d.available ? 'yes' : 'no').padEnd(9)}  ${d.detail}`);
  return `${[`${'device'.padEnd(width)}  ${'engine'.padEnd(engineWidth)}  available  detail`, ...lines].join('\n')}\n`;
}

/** Every device for both engines, available or not and why (probes optional packages and GPU adapters). */
export async function listDevices(): Promise<DeviceStatus[]> {
  const [{ probeTfDevices }, { ortDeviceStatus }] = await Promise.all([import('./tfjs-load.js'), import('./onnx.js')]);
  const tfRows = await probeTfDevices();
  const tfWebgpu = tfRows.find((row) => row.device === 'webgpu');
  // ONNX Runtime's bundled WebGPU provider needs the same GPU adapter that the Dawn probe just looked for.
  const ortRows = (await ortDeviceStatus()).map((row) =>
    row.device === 'webgpu' && row.available && tfWebgpu && !tfWebgpu.available ? { ...row, available: false, detail: tfWebgpu.detail } : row,
  );
  return [...tfRows, ...ortRows];
}

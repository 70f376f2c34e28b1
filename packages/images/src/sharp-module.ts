import type Sharp from 'sharp';

// sharp (libvips) loads on first use, so a tool's --help and usage errors stay instant.
let sharpModule: Promise<typeof Sharp> | undefined;
export function loadSharp(): Promise<typeof Sharp> {
  sharpModule ??= import('sharp').then((module) => module.default);
  return sharpModule;
}

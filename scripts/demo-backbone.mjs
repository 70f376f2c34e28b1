#!/usr/bin/env node
// The demo's backbone: no pretrained weights can be downloaded offline, so the demo builds a small conv net
// locally (test-utils' buildTinyConvBackbone: conv 3x3 -> conv 3x3 stride 2 -> global average pool 'features',
// random weights from a fixed seed) as an ONNX file. Frozen random conv features of the generated images are
// separable enough for a trained head to pass the demo's 90% test-accuracy gate (eval-model measures it on the
// test split, which neither the backbone nor train ever saw).
//
//   node scripts/demo-backbone.mjs --dir demo/backbone --size 64
//
// Prints the backbone's path on stdout. Needs `npx tsc -b`.
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: 'demo/backbone' },
    size: { type: 'string', default: '64' },
    seed: { type: 'string', default: '3' },
  },
});
const size = Number(values.size);
if (!Number.isInteger(size) || size < 8) {
  process.stderr.write(`demo-backbone: expected --size to be an integer >= 8, got '${values.size}'\n`);
  process.exit(2);
}
const { buildTinyConvBackbone } = await import('@imgpipe/test-utils');
const building = `${values.dir}.tmp-${process.pid}`;
await rm(building, { recursive: true, force: true });
const backbone = await buildTinyConvBackbone({ dir: building, inputSize: size, format: 'onnx', channels: [16, 32], seed: Number(values.seed) });
await rm(values.dir, { recursive: true, force: true });
await rename(building, values.dir);
process.stderr.write(
  `demo-backbone: built a small conv backbone with random weights (${backbone.featureDim} features from layer '${backbone.featureLayer}', ` +
    `${size}x${size} input) at ${values.dir}; the demo uses it because pretrained weights cannot be downloaded offline\n`,
);
process.stdout.write(`${join(values.dir, 'model.onnx')}\n`);

#!/usr/bin/env node
// Assembles each packages/*/src/*.wat into <name>-binary.ts beside it (the module's bytes as base64), with wabt.
// `--check` writes nothing and fails when a committed -binary.ts differs from what its .wat assembles to.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(join(process.cwd(), 'packages/training-kernels/package.json'));
const wabt = await require('wabt')();
const check = process.argv.includes('--check');
let stale = 0;
for (const pkg of readdirSync('packages')) {
  const dir = join('packages', pkg, 'src');
  let names;
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.wat'));
  } catch {
    continue;
  }
  for (const name of names) {
    const source = join(dir, name);
    const module = wabt.parseWat(name, readFileSync(source, 'utf8'), { simd: true });
    module.validate();
    const { buffer } = module.toBinary({ write_debug_names: false });
    module.destroy();
    const target = join(dir, name.replace(/\.wat$/, '-binary.ts'));
    const text = `// Generated from ${name} by scripts/build-wasm.mjs: do not edit.\nexport const WASM_BASE64 =\n  '${Buffer.from(buffer).toString('base64')}';\n`;
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {}
    if (current === text) continue;
    if (check) {
      process.stderr.write(`${target} is stale: run node scripts/build-wasm.mjs\n`);
      stale += 1;
    } else {
      writeFileSync(target, text);
      process.stderr.write(`wrote ${target} (${buffer.length} bytes of wasm)\n`);
    }
  }
}
process.exit(stale ? 1 : 0);

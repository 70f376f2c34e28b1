#!/usr/bin/env node
// `make demo`: the whole pipeline on generated images against a local S3 server, in a few minutes on 2 cores.
//   1. make demo-data demo-backbone: labelled images and images.csv (seed format) under demo/images, and a small
//      conv backbone with random weights under demo/backbone (no pretrained weights can be downloaded offline)
//   2. starts scripts/s3-server.mjs on 127.0.0.1 (a child process this script owns: stopped on exit, Ctrl-C
//      included; it also stops by itself when this process dies, as its stdin closes) and puts the images and
//      the CSV into s3://imgpipe-demo/images/
//   3. make all: download-s3 -> prep-data -> train (2x2 sweep) -> eval-model --min-accuracy 0.9 -> upload-s3, each
//      stage reading the previous stage's pointer on stdin; stages whose inputs did not change are skipped. If the
//      random-weights backbone cannot pass the gate, it trains a small conv net on the generated *training split*
//      only (make demo-trained-backbone), says so, and runs the stages again with it (--trained-backbone: at once)
//   4. starts serve on a free port, sends one request in the seed's format, prints the answer
//   5. prints a summary: test accuracy, where the model and results are, how to rerun a stage
// With --config FILE (CONFIG=config.yaml make demo) steps 1-2 are skipped: make all runs against the config's
// bucket and backbone (default: the real ResNet50) in out/, then steps 4-5. --work DIR: another work directory.
// The AWS SDK's "Node 20 support ends" warning is switched off for the demo's tools (it would be printed by each).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { config: { type: 'string' }, work: { type: 'string' }, 'trained-backbone': { type: 'boolean', default: false } },
});
const config = values.config;
const work = values.work ?? (config ? 'out' : 'demo');
const started = Date.now();
const children = new Set();
const BUCKET = 'imgpipe-demo';
const IMG = 64;
const bin = (name) => join('node_modules', '.bin', name);
// The demo's pipeline settings, passed to make (and printed in the summary so any stage can be rerun by hand).
const demoVars = {
  WORK: work,
  CSV: `s3://${BUCKET}/images/images.csv`,
  BUCKET,
  PREFIX: 'results/',
  IMG: String(IMG),
  BACKBONE: `${work}/backbone/model.onnx`,
  FEATURE_LAYER: 'features',
  DEVICE: 'wasm',
  TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 32,64 --epochs 20',
  MIN_ACCURACY: '0.9',
  SKIP_BUILD: '1',
};
// The fallback when the random-weights backbone does not pass the gate (or with --trained-backbone): a small conv
// net trained end to end on the generated training split only (make demo-trained-backbone).
const trainedVars = { ...demoVars, BACKBONE: `${work}/backbone-trained/model.json` };
let makeVars = config ? { WORK: work, CONFIG: config, MIN_ACCURACY: '0.9', SKIP_BUILD: '1' } : values['trained-backbone'] ? trainedVars : demoVars;
const baseEnv = {
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  ...process.env,
  IMGPIPE_CACHE_DIR: process.env.IMGPIPE_CACHE_DIR ?? resolve(work, 'cache'),
};
if (!config) baseEnv.IMGPIPE_NO_WEBGPU = baseEnv.IMGPIPE_NO_WEBGPU ?? '1';

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping the demo and its servers`);
    stopChildren().finally(() => process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[signal] ?? 0)));
  });
}

try {
  const summary = await main();
  printSummary(summary);
  say(`done in ${seconds()} s`);
  await stopChildren();
  process.exit(0);
} catch (error) {
  if (!stopping) {
    process.stderr.write(`\ndemo: failed: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopChildren();
    process.exit(1);
  }
}

async function main() {
  let env = baseEnv;
  let s3 = null;
  if (config) {
    say(`running the pipeline with ${config} (its bucket and backbone) in ${work}/`);
  } else {
    step('1/5', 'generating the labelled images and the demo backbone');
    say('no pretrained weights can be downloaded offline, so the demo uses a small conv backbone with random weights built here');
    say('(if it cannot pass the 90% gate, one trained on the generated training split only);');
    say('with CONFIG=config.yaml make demo the same stages run on your bucket with the real ResNet50');
    await run('make', ['--no-print-directory', 'demo-data', 'demo-backbone', ...assignments(demoVars)], env);

    step('2/5', 'starting the local S3 server on 127.0.0.1');
    s3 = await startChild(process.execPath, ['scripts/s3-server.mjs', '--bucket', BUCKET, '--stdin-lifeline'], env, 's3-server');
    env = { ...env, ...s3.line.env };
    say(`S3 endpoint ${s3.line.endpoint} (objects in memory; stopped when the demo ends)`);
    await run(process.execPath, ['scripts/make-demo-data.mjs', '--dir', `${work}/images`, '--bucket', BUCKET, '--prefix', 'images', '--upload'], env);
  }

  step('3/5', 'make all: download-s3 -> prep-data -> train -> eval-model --min-accuracy 0.9 -> upload-s3');
  try {
    await run('make', ['--no-print-directory', 'all', ...assignments(makeVars)], env);
  } catch (error) {
    const accuracy = config || makeVars === trainedVars ? undefined : gateFailure();
    if (accuracy === undefined) throw error;
    say(`the random-weights backbone reached ${(accuracy * 100).toFixed(1)}% test accuracy, below the 90% gate: training the small backbone`);
    say('end to end on the generated training split only (val and test stay unseen), then running the stages again');
    makeVars = trainedVars;
    await run('make', ['--no-print-directory', 'all', ...assignments(makeVars)], env);
  }
  if (makeVars === trainedVars) say(`backbone: ${trainedVars.BACKBONE}, a small conv net trained on the training split only`);
  const runPointer = readJson(`${work}/run.json`);
  const evalPointer = readJson(`${work}/eval.json`);
  const upload = readJson(`${work}/upload.json`);

  step('4/5', 'serving the model and sending it one request');
  const device = config ? [] : ['--device', 'wasm'];
  const served = await startChild(
    resolve(bin('serve')),
    ['--model', runPointer.best, '--port', '0', ...device, ...(config ? ['--config', config] : [])],
    env,
    'serve',
  );
  const image = firstTestImage(readJson(`${work}/prep.json`).path);
  const request = { data: [{ path: image, encoded: readFileSync(image).toString('base64') }] };
  say(`POST ${new URL('/', served.line.url).href} ${JSON.stringify(truncateEncoded(request))}`);
  const response = await fetch(new URL('/', served.line.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request),
  });
  const answer = await response.json();
  say(`HTTP ${response.status} ${JSON.stringify(truncateEncoded(answer))}`);
  if (!response.ok) throw new Error(`serve answered HTTP ${response.status}`);
  await stopChild(served);
  if (s3) await stopChild(s3);
  return { runPointer, evalPointer, upload, endpoint: s3?.line.endpoint };
}

function printSummary({ runPointer, evalPointer, upload, endpoint }) {
  step('5/5', 'summary');
  const again = config ? `CONFIG=${config} make demo` : 'make demo';
  const runDir = runPointer.path;
  const evaluation = readJson(join(runDir, 'eval.json'));
  const accuracy = evalPointer.test_accuracy ?? evaluation.test_accuracy;
  const testCount = evaluation.count;
  const lines = [
    `test accuracy   ${(accuracy * 100).toFixed(1)}% on the test split (${testCount} images neither the backbone nor train saw; gate: 90%)`,
    ...(config
      ? []
      : [
          `backbone        ${makeVars.BACKBONE} (${makeVars === trainedVars ? 'a small conv net trained on the training split only' : 'a small conv net with random weights, built here'})`,
        ]),
    `run directory   ${runDir}  (run.json, trials.csv, results.csv, eval.json, report.html, plots/)`,
    `model           ${runPointer.best}`,
    `report          ${join(runDir, 'report.html')}`,
    `uploaded        ${upload.uri}${endpoint ? `  (on the demo's S3 server ${endpoint}, gone now that the demo ended)` : ''}`,
    `  model         ${upload.model}`,
    `  results       ${upload.results}`,
    `  loader        ${upload.snippet}`,
    '',
    'rerun:',
    `  ${again}    reruns only the stale stages (stamps in ${work}/.stamps/)`,
    `  rm ${work}/.stamps/train && ${again}    forces train and the stages after it (same for download, prep, eval, upload)`,
    `  ${bin('train')} --data ${work}/prep --out ${work}/runs ${config ? `--config ${config}` : `--backbone ${makeVars.BACKBONE} --feature-layer features --device wasm ${demoVars.TRAIN_FLAGS}`}`,
    `  ${bin('eval-model')} --run ${runDir} --min-accuracy 0.9${config ? ` --config ${config}` : ' --device wasm'}`,
    `  ${bin('serve')} --model ${runPointer.best} --port 8080${config ? ` --config ${config}` : ' --device wasm'}`,
    config
      ? `  make all CONFIG=${config}               the same stages as make targets`
      : '  CONFIG=config.yaml make demo           the same on your bucket with the real ResNet50',
  ];
  process.stderr.write(`${lines.map((line) => `  ${line}`).join('\n')}\n`);
  // stdout: one pointer line with the demo's outcome, for scripts.
  process.stdout.write(
    `${JSON.stringify({ kind: 'demo', test_accuracy: accuracy, run: runDir, model: runPointer.best, uploaded: upload.uri, seconds: Number(seconds()) })}\n`,
  );
}

/** The local path of the first test-split image of a dataset directory (its test.csv keeps the input's columns). */
/** The test accuracy of the run train just made when eval-model's gate stopped make, else undefined. */
function gateFailure() {
  try {
    const runDir = readJson(`${work}/run.json`).path;
    const accuracy = readJson(join(runDir, 'eval.json')).test_accuracy;
    return typeof accuracy === 'number' && accuracy < Number(demoVars.MIN_ACCURACY) ? accuracy : undefined;
  } catch {
    return undefined;
  }
}

function firstTestImage(datasetDir) {
  const [header, first] = readFileSync(join(datasetDir, 'test.csv'), 'utf8').split(/\r?\n/);
  const columns = header.split(',');
  const cells = first.split(',');
  const column = columns.includes('local_image') ? 'local_image' : 'source';
  return cells[columns.indexOf(column)];
}

function truncateEncoded(value) {
  return JSON.parse(JSON.stringify(value), (key, v) =>
    key === 'encoded' && typeof v === 'string' && v.length > 40 ? `${v.slice(0, 40)}...(${v.length} chars)` : v,
  );
}

function assignments(vars) {
  return Object.entries(vars).map(([key, value]) => `${key}=${value}`);
}

function run(command, args, env) {
  return new Promise((resolvePromise, reject) => {
    // make echoes its recipes on stdout: everything a step prints goes to stderr, stdout is the demo's result line.
    const child = spawn(command, args, { env, stdio: ['ignore', 2, 2] });
    children.add(child);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (code === 0) resolvePromise();
      else reject(new Error(`${[command, ...args].join(' ')} exited with ${signal ?? code}`));
    });
  });
}

/** Spawns a server and waits for its first stdout line (a JSON object with its address). */
function startChild(command, args, env, name) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    children.add(child);
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 120 s`)), 120_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      children.delete(child);
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${signal ?? code} before it was ready`));
    });
    lines.once('line', (text) => {
      clearTimeout(timer);
      try {
        resolvePromise({ child, name, line: JSON.parse(text) });
      } catch {
        reject(new Error(`${name} printed '${text}' instead of its address`));
      }
    });
  });
}

async function stopChild({ child }) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

async function stopChildren() {
  await Promise.all([...children].map((child) => stopChild({ child })));
}

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function step(number, text) {
  process.stderr.write(`\n== demo ${number} (${seconds()} s): ${text}\n`);
}

function say(text) {
  process.stderr.write(`demo: ${text}\n`);
}

function seconds() {
  return ((Date.now() - started) / 1000).toFixed(1);
}

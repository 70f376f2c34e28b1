#!/usr/bin/env node
// A local S3-compatible server (fauxqs, objects in memory) for `make demo` and the pipeline tests: listens on
// 127.0.0.1 and a free port (or --port N), creates the --bucket names given, and prints one JSON line on stdout,
//   {"kind":"s3-server","endpoint":"http://127.0.0.1:PORT","env":{...}}
// with the environment variables (S3_ENDPOINT and test credentials) a tool needs to reach it. It stops on
// SIGINT/SIGTERM, or when stdin closes when started with --stdin-lifeline (so it never outlives the demo).
// Needs `npx tsc -b` (it imports the built @imgpipe/test-utils).
import { parseArgs } from 'node:util';
import { startS3Server } from '@imgpipe/test-utils';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    bucket: { type: 'string', multiple: true, default: [] },
    'stdin-lifeline': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write('usage: node scripts/s3-server.mjs [--bucket NAME ...] [--stdin-lifeline]\n');
  process.exit(0);
}
if (values.port !== undefined) process.stderr.write('s3-server: --port is not supported (a free port is picked); ignoring\n');

const server = await startS3Server();
for (const bucket of values.bucket) await server.createBucket(bucket);
process.stdout.write(`${JSON.stringify({ kind: 's3-server', endpoint: server.endpoint, env: server.env })}\n`);
process.stderr.write(`s3-server: listening on ${server.endpoint} (in memory; stops on Ctrl-C)\n`);

let stopping = false;
async function stop(why) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`s3-server: ${why}: stopping\n`);
  await server.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
if (values['stdin-lifeline']) {
  process.stdin.on('end', () => void stop('stdin closed'));
  process.stdin.on('error', () => void stop('stdin closed'));
  process.stdin.resume();
}

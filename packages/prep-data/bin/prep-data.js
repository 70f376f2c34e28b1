#!/usr/bin/env node
import { availableParallelism } from 'node:os';

// sharp decodes on libuv's thread pool (4 threads unless told otherwise): size it for two decodes per core.
// It must be set before the pool's first use, hence here, before anything else is imported.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, 2 * availableParallelism()));
await import('../dist/main.js');

#!/usr/bin/env node
// Node's compile cache (22.1+) keeps the V8 code of the modules a tool loads, so each start compiles less.
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
await import('../dist/main.js');

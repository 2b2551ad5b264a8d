#!/usr/bin/env node
// Serves the reference model as a cpspec driver (conformance/PROTOCOL.md) on stdin/stdout, optionally with
// faults, so that the runner's driver path and its fault detection can be exercised:
//   cpspec run --target "driver:node conformance/bin/serve-model.js --fault drop-every=5"
import { serveMain } from '../src/serve-model.ts';

serveMain(process.argv.slice(2));

// A longer fuzzing run of the framing properties than the test suite does.
//
// usage: node fuzz/framing/run.ts [--runs N] [--seed S] [--path P] [--no-native]
//   Runs the oracle property on the TS decoder and, when the addon has the framing binding, the TS/C++
//   differential for streams and batches. A failure prints the shrunk counterexample and the seed/path that
//   replay it (pass them back with --seed and --path).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder } from '../../reference/src/framing/decoder.ts';
import { decodeBatch, encodeBatch } from '../../reference/src/framing/batch.ts';
import { NativeFrameDecoder, nativeDecodeBatch, nativeFramingStatus } from '../../reference/src/framing/native.ts';
import { batchCaseArb, corruptBatch } from './arbitraries.ts';
import { batchOutcome } from './harness.ts';
import { differentialProperty, modelProperty, roundtripProperty } from './properties.ts';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const runs = Number(option('--runs') ?? 20000);
const seed = option('--seed') === undefined ? Date.now() ^ (Math.random() * 0x100000000) : Number(option('--seed'));
const path = option('--path');
const useNative = !process.argv.includes('--no-native');

const ts = (o: ConstructorParameters<typeof FrameDecoder>[0]) => new FrameDecoder(o);
const properties: [string, fc.IProperty<unknown[]>][] = [
  ['roundtrip (ts)', roundtripProperty(ts) as fc.IProperty<unknown[]>],
  ['oracle (ts)', modelProperty(ts) as fc.IProperty<unknown[]>],
];
const native = nativeFramingStatus();
if (useNative && native.available) {
  properties.push(['differential stream (ts vs c++)', differentialProperty(ts, (o) => new NativeFrameDecoder(o)) as fc.IProperty<unknown[]>]);
  properties.push([
    'differential batch (ts vs c++)',
    fc.property(batchCaseArb(), (c) => {
      const payload = corruptBatch(encodeBatch(c.frames, { compress: c.compress, level: c.level }), c.corruption);
      const o: { maxDecompressed?: number; maxCount?: number } = {};
      if (c.maxDecompressed !== undefined) o.maxDecompressed = c.maxDecompressed;
      if (c.maxCount !== undefined) o.maxCount = c.maxCount;
      assert.deepEqual(batchOutcome(() => nativeDecodeBatch(payload, o)), batchOutcome(() => decodeBatch(payload, o)));
    }) as fc.IProperty<unknown[]>,
  ]);
} else if (useNative) {
  console.log(`native codec not available: ${native.available ? '' : native.reason}`);
}

let failed = 0;
for (const [name, prop] of properties) {
  const t0 = performance.now();
  const r = fc.check(prop, { numRuns: runs, seed, ...(path === undefined ? {} : { path }) });
  const ms = (performance.now() - t0).toFixed(0);
  if (r.failed) {
    failed++;
    console.log(`FAIL ${name} after ${r.numRuns} runs (${ms} ms): replay with --seed ${r.seed} --path ${r.counterexamplePath}`);
    console.log(`  counterexample: ${fc.stringify(r.counterexample)}`);
    console.log(`  ${String(r.errorInstance).split('\n').slice(0, 12).join('\n  ')}`);
  } else {
    console.log(`ok   ${name}: ${r.numRuns} runs (${ms} ms, seed ${seed})`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;

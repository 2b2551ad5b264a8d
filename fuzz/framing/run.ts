// A longer fuzzing run of the framing properties than the test suite does.
//
// usage: node fuzz/framing/run.ts [--runs N] [--seed S] [--path P] [--no-native] [--save DIR] [--broken BUG]
//   Runs the oracle property on the TS decoder and, when the addon has the framing binding, the TS/C++
//   differential for streams and batches. A failure prints the shrunk counterexample and the seed/path that
//   replay it (pass them back with --seed and --path), and writes a runnable JSON repro (suite framing, the
//   format of fuzz/cli.ts) into --save (default fuzz/corpus/, where npm test replays it as a named test
//   against the TS and C++ decoders and the targets' codecs: it fails there until the bug is fixed).
//   --broken BUG runs the oracle property on a deliberately broken decoder instead (fuzz/framing/broken.ts:
//   header-only-rejected, payload-one-too-long), to produce a repro that the correct decoders pass.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder } from '../../reference/src/framing/decoder.ts';
import { decodeBatch, encodeBatch } from '../../reference/src/framing/batch.ts';
import { NativeFrameDecoder, nativeDecodeBatch, nativeFramingStatus } from '../../reference/src/framing/native.ts';
import { batchCaseArb, corruptBatch, scenarioArb, type Scenario } from './arbitraries.ts';
import { batchOutcome } from './harness.ts';
import { cleanScenario, differentialProperty, modelProperty, roundtripProperty } from './properties.ts';
import { BrokenDecoder, type Bug } from './broken.ts';
import { framingScenarioToJSON, replayOnDecoder } from './target.ts';
import { saveRepro } from '../cli.ts';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const runs = Number(option('--runs') ?? 20000);
const seed = option('--seed') === undefined ? Date.now() ^ (Math.random() * 0x100000000) : Number(option('--seed'));
const path = option('--path');
const useNative = !process.argv.includes('--no-native');
const saveDir = option('--save') ?? new URL('../corpus/', import.meta.url).pathname;
const broken = option('--broken') as Bug | undefined;
if (broken !== undefined && broken !== 'header-only-rejected' && broken !== 'payload-one-too-long') {
  console.error(`--broken: unknown bug '${broken}' (header-only-rejected, payload-one-too-long)`);
  process.exit(2);
}

/** Turns a counterexample into a decoding scenario (undefined for the batch property: no stream to replay). */
type ToScenario = (counterexample: unknown[]) => Scenario | undefined;
const asScenario: ToScenario = (c) => c[0] as Scenario;
const fromRoundtrip: ToScenario = (c) => cleanScenario(c[0] as Scenario['frames'], c[1] as Scenario['chunking']);

const ts = (o: ConstructorParameters<typeof FrameDecoder>[0]) => new FrameDecoder(o);
const properties: [string, fc.IProperty<unknown[]>, ToScenario][] = broken
  ? [
      [
        `oracle (broken decoder: ${broken})`,
        // Options the targets' FramingApi can express too, so that the repro also replays through targets.
        fc.property(
          scenarioArb({ withLimits: false }).map((x) => ({ ...x, options: { ...x.options, checkPlayer: false, discardTooLarge: false } })),
          (x) => replayOnDecoder((o) => new BrokenDecoder(broken, o), x),
        ) as fc.IProperty<unknown[]>,
        asScenario,
      ],
    ]
  : [
      ['roundtrip (ts)', roundtripProperty(ts) as fc.IProperty<unknown[]>, fromRoundtrip],
      ['oracle (ts)', modelProperty(ts) as fc.IProperty<unknown[]>, asScenario],
    ];
const native = nativeFramingStatus();
if (!broken && useNative && native.available) {
  properties.push(['differential stream (ts vs c++)', differentialProperty(ts, (o) => new NativeFrameDecoder(o)) as fc.IProperty<unknown[]>, asScenario]);
  properties.push([
    'differential batch (ts vs c++)',
    fc.property(batchCaseArb(), (c) => {
      const payload = corruptBatch(encodeBatch(c.frames, { compress: c.compress, level: c.level }), c.corruption);
      const o: { maxDecompressed?: number; maxCount?: number } = {};
      if (c.maxDecompressed !== undefined) o.maxDecompressed = c.maxDecompressed;
      if (c.maxCount !== undefined) o.maxCount = c.maxCount;
      assert.deepEqual(batchOutcome(() => nativeDecodeBatch(payload, o)), batchOutcome(() => decodeBatch(payload, o)));
    }) as fc.IProperty<unknown[]>,
    () => undefined,
  ]);
} else if (useNative && !broken) {
  console.log(`native codec not available: ${native.available ? '' : native.reason}`);
}

let failed = 0;
for (const [name, prop, toScenario] of properties) {
  const t0 = performance.now();
  const r = fc.check(prop, { numRuns: runs, seed, ...(path === undefined ? {} : { path }) });
  const ms = (performance.now() - t0).toFixed(0);
  if (r.failed) {
    failed++;
    console.log(`FAIL ${name} after ${r.numRuns} runs (${ms} ms): replay with --seed ${r.seed} --path ${r.counterexamplePath}`);
    console.log(`  counterexample: ${fc.stringify(r.counterexample)}`);
    console.log(`  ${String(r.errorInstance).split('\n').slice(0, 12).join('\n  ')}`);
    const scenario = toScenario(r.counterexample as unknown[]);
    if (scenario === undefined) {
      console.log('  (a batch counterexample: no stream repro is written; replay it with --seed and --path)');
    } else {
      const file = saveRepro(saveDir, {
        schema: 'cpspec-fuzz-repro/1',
        suite: 'framing',
        target: broken ? `fuzz/framing/broken.ts (${broken})` : name,
        seed: r.seed,
        path: r.counterexamplePath ?? '',
        error: String(r.errorInstance).slice(0, 2000),
        why: broken
          ? `found in the deliberately broken decoder (${broken}) by the oracle property: the correct decoders must pass it`
          : `found by node fuzz/framing/run.ts (${name}): a framing bug until fixed`,
        scenario: framingScenarioToJSON({ suite: 'framing', case: scenario }),
      });
      console.log(`  repro: ${file}`);
    }
  } else {
    console.log(`ok   ${name}: ${r.numRuns} runs (${ms} ms, seed ${seed})`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;

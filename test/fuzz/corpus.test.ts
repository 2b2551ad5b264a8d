// Every saved repro in fuzz/corpus/ (port, sockets and framing suites) replayed as a named regression test:
// against the model and the native target; framing repros also straight on the TypeScript and C++ stream
// decoders (which can express every decoder option, the FramingApi not all of them).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Target } from '../../reference/src/target.ts';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { createNativeTarget } from '../../native/js/target.ts';
import { FrameDecoder } from '../../reference/src/framing/decoder.ts';
import { NativeFrameDecoder, nativeFramingStatus } from '../../reference/src/framing/native.ts';
import { readRepro, replay, SUITES, type Repro } from '../../fuzz/cli.ts';
import { expressible, framingScenarioFromJSON, replayOnDecoder } from '../../fuzz/framing/target.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const corpusDir = path.join(root, 'fuzz', 'corpus');
const corpus: Array<[string, Repro]> = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => [f.replace(/\.json$/, ''), readRepro(path.join(corpusDir, f))]);

test('the corpus holds repros of every suite, each saying why it is kept', () => {
  for (const suite of SUITES) expect(corpus.some(([, r]) => r.suite === suite), `no ${suite} repro in fuzz/corpus/`).toBe(true);
  for (const [name, r] of corpus) expect(r.why, `${name} must say why it is kept`).toBeTruthy();
});

const targets: Array<[string, () => Promise<Target>]> = [
  ['model', async () => createModelTarget()],
  ['native', () => createNativeTarget()],
];

for (const [name, make] of targets) {
  describe(`corpus replay on ${name}`, () => {
    let t: Target;
    beforeAll(async () => {
      t = await make();
    });
    afterAll(async () => {
      await t.dispose();
    });
    for (const [file, r] of corpus) {
      const framingOnlyOnDecoders = r.suite === 'framing' && !expressible(framingScenarioFromJSON(r.scenario).case);
      test(`${r.suite}: ${file}${framingOnlyOnDecoders ? ' (decoder options the FramingApi cannot express: replayed on the decoders below)' : ''}`, async () => {
        if (framingOnlyOnDecoders) {
          console.log(`${file}: checks the player id or discards large frames; the FramingApi cannot express that, so only the decoder replays run it`);
          return;
        }
        // Interleavings matter on real threads: replay the port ones many times there.
        const times = r.suite === 'port' && name === 'native' ? 200 : r.suite === 'sockets' && name === 'native' ? 20 : 1;
        for (let i = 0; i < times; i++) await replay(t, r);
      });
    }
  });
}

describe('framing corpus replay on the stream decoders', () => {
  const native = nativeFramingStatus();
  const decoders: Array<[string, ((o: ConstructorParameters<typeof FrameDecoder>[0]) => FrameDecoder | NativeFrameDecoder) | undefined]> = [
    ['TypeScript decoder', (o) => new FrameDecoder(o)],
    ['C++ decoder', native.available ? (o) => new NativeFrameDecoder(o) : undefined],
  ];
  for (const [name, make] of decoders) {
    for (const [file, r] of corpus.filter(([, x]) => x.suite === 'framing')) {
      test(`${name}: ${file}`, () => {
        if (!make) {
          console.log(`${file}: the addon has no framing binding here (${native.available ? '' : native.reason}); not replayed on the C++ decoder`);
          expect(native.available).toBe(false);
          return;
        }
        replayOnDecoder(make, framingScenarioFromJSON(r.scenario).case);
      });
    }
  }
});

// The framing suite of the fuzzer (fuzz/framing/target.ts through a target's FramingApi) and its repros:
// clean on the good targets, it catches the deliberately broken decoders (fuzz/framing/broken.ts) and saves
// a runnable, shrunk JSON repro; fuzz/framing/run.ts writes such repros too.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { createNativeTarget } from '../../native/js/target.ts';
import { fuzzSuite, readRepro, replay, formatScenario } from '../../fuzz/cli.ts';
import { brokenFramingTarget } from '../../fuzz/framing/broken.ts';
import { framingScenarioFromJSON, framingScenarioToJSON, type FramingScenarioJSON } from '../../fuzz/framing/target.ts';
import { scenarioBytes } from '../../fuzz/framing/harness.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const save = () => mkdtempSync(path.join(tmpdir(), 'cpspec-fuzz-framing-'));

describe('framing suite on good targets', () => {
  test('model (TypeScript codec): 150 scenarios, no failure', async () => {
    const r = await fuzzSuite('framing', { target: 'model', makeTarget: async () => createModelTarget(), runs: 150, seed: 42, saveDir: save() });
    expect(r.failed, r.repro?.error).toBe(false);
    expect(r.runs).toBe(150);
  });
  test('native (C++ codec): 150 scenarios, no failure', async () => {
    const r = await fuzzSuite('framing', { target: 'native', makeTarget: () => createNativeTarget(), runs: 150, seed: 42, saveDir: save() });
    expect(r.failed, r.repro?.error).toBe(false);
    expect(r.runs).toBe(150);
  });
});

describe('framing suite on deliberately broken decoders', () => {
  for (const bug of ['header-only-rejected', 'payload-one-too-long'] as const) {
    test(`${bug}: caught, shrunk to <= 2 frames and <= 32 bytes, saved as a repro that replays`, async () => {
      const dir = save();
      const r = await fuzzSuite('framing', { target: `broken:${bug}`, makeTarget: async () => brokenFramingTarget(createModelTarget(), bug), runs: 1000, seed: 3, saveDir: dir });
      expect(r.failed, `the ${bug} bug went unnoticed`).toBe(true);
      expect(r.repro!.error).toMatch(/differ from the oracle/);
      const saved = readRepro(r.reproFile!);
      expect(saved.suite).toBe('framing');
      const fs = framingScenarioFromJSON(saved.scenario);
      expect(fs.case.frames.length, JSON.stringify(saved.scenario)).toBeLessThanOrEqual(2);
      expect(scenarioBytes(fs.case).length, JSON.stringify(saved.scenario)).toBeLessThanOrEqual(32);
      expect(formatScenario(saved.scenario)).toMatch(/frames .*\n.*bytes/);
      await expect(replay(brokenFramingTarget(createModelTarget(), bug), saved)).rejects.toThrow(/differ from the oracle/);
      await expect(replay(createModelTarget(), saved)).resolves.toBeUndefined();
      const n = await createNativeTarget();
      try {
        await expect(replay(n, saved)).resolves.toBeUndefined();
      } finally {
        await n.dispose();
      }
    });
  }
});

describe('framing repros', () => {
  test('the JSON form round-trips, and malformed ones are refused with the reason', () => {
    const j: FramingScenarioJSON = {
      suite: 'framing',
      case: {
        frames: [{ type: 3, sequence: 4294967295, playerId: 7, payload: [1, 2, 255] }],
        corruption: { kind: 'insert', at: 5, bytes: [9, 9] },
        chunking: [1, 3],
        options: { maxSize: 100, registry: { dropType: null }, checkPlayer: false, discardTooLarge: false },
        limits: [{ beforeChunk: 1, maxSize: 40 }],
      },
    };
    const fs = framingScenarioFromJSON(j);
    expect(fs.case.frames[0].payload).toBeInstanceOf(Uint8Array);
    expect(JSON.parse(JSON.stringify(framingScenarioToJSON(fs)))).toEqual(j);
    const broken = (patch: (c: FramingScenarioJSON['case']) => void) => {
      const c = structuredClone(j);
      patch(c.case);
      return () => framingScenarioFromJSON(c);
    };
    expect(broken((c) => (c.frames[0].payload = [256]))).toThrow(/frames\[0\]/);
    expect(broken((c) => (c.frames[0].type = 65536))).toThrow(/frames\[0\]/);
    expect(broken((c) => (c.corruption = { kind: 'melt' }))).toThrow(/corruption.kind/);
    expect(broken((c) => (c.chunking = [0]))).toThrow(/chunking/);
    expect(broken((c) => (c.options.maxSize = 11))).toThrow(/maxSize/);
  });

  test('fuzz/framing/run.ts writes a runnable repro when it finds a failure (here: in a broken decoder)', () => {
    const dir = save();
    const r = spawnSync(process.execPath, [path.join(root, 'fuzz/framing/run.ts'), '--broken', 'payload-one-too-long', '--runs', '500', '--seed', '5', '--save', dir], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/FAIL oracle \(broken decoder: payload-one-too-long\)/);
    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(r.stdout).toContain(`repro: ${path.join(dir, files[0])}`);
    const repro = readRepro(path.join(dir, files[0]));
    expect(repro).toMatchObject({ schema: 'cpspec-fuzz-repro/1', suite: 'framing', seed: 5 });
    expect(repro.path).toMatch(/^\d+(:\d+)*$/);
    expect(repro.why).toMatch(/correct decoders must pass it/);
  });
});

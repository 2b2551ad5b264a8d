// The port fuzzer: it finds nothing on the good targets, it catches deliberately broken ports and shrinks
// them to a small scenario, and every saved repro in fuzz/corpus/ is replayed as a named regression test.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Target } from '../../reference/src/target.ts';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { createNativeTarget } from '../../native/js/target.ts';
import { fuzzPort, readRepro, replay } from '../../fuzz/cli.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const corpusDir = path.join(root, 'fuzz', 'corpus');
const corpus = readdirSync(corpusDir).filter((f) => f.endsWith('.json')).sort();
const save = () => mkdtempSync(path.join(tmpdir(), 'cpspec-fuzz-'));

describe('port fuzzer on good targets', () => {
  test('model: 300 scenarios, no failure', async () => {
    const r = await fuzzPort({ target: 'model', makeTarget: async () => createModelTarget(), runs: 300, seed: 42, saveDir: save() });
    expect(r.failed, r.repro?.error).toBe(false);
    expect(r.runs).toBe(300);
  });
  test('native: 300 scenarios, no failure', async () => {
    const r = await fuzzPort({ target: 'native', makeTarget: () => createNativeTarget(), runs: 300, seed: 42, saveDir: save() });
    expect(r.failed, r.repro?.error).toBe(false);
  });
});

describe('port fuzzer on deliberately broken ports', () => {
  const broken: Array<[string, Parameters<typeof createModelTarget>[0], RegExp]> = [
    ['drops packets on close', { faults: { dropOnClose: true } }, /never delivered/],
    ['loses every 3rd post', { faults: { dropEvery: 3 } }, /never delivered|timed out with|older packet/],
    ['duplicates every 2nd post', { faults: { duplicateEvery: 2 } }, /a second time/],
  ];
  for (const [what, options, message] of broken) {
    test(`a port that ${what} is caught and shrunk to a small scenario`, async () => {
      const dir = save();
      const r = await fuzzPort({ target: 'model-broken', makeTarget: async () => createModelTarget(options), runs: 500, seed: 7, saveDir: dir });
      expect(r.failed).toBe(true);
      expect(r.repro!.error).toMatch(message);
      expect(r.repro!.scenario.ops.length).toBeLessThanOrEqual(6);
      // The saved file is a runnable repro: it fails on the broken port and passes on the good ones.
      const saved = readRepro(r.reproFile!);
      await expect(replay(createModelTarget(options), saved)).rejects.toThrow(message);
      await expect(replay(createModelTarget(), saved)).resolves.toBeUndefined();
    });
  }
});

describe('fuzz corpus replay', () => {
  const targets: Array<[string, () => Promise<Target>]> = [
    ['model', async () => createModelTarget()],
    ['native', () => createNativeTarget()],
  ];
  for (const [name, make] of targets) {
    describe(name, () => {
      let t: Target;
      beforeAll(async () => {
        t = await make();
      });
      afterAll(async () => {
        await t.dispose();
      });
      for (const file of corpus) {
        test(file.replace(/\.json$/, ''), async () => {
          const r = readRepro(path.join(corpusDir, file));
          expect(r.why, `${file} must say why it is kept`).toBeTruthy();
          // Interleavings matter on real threads: replay each one many times.
          for (let i = 0; i < (name === 'native' ? 200 : 1); i++) await replay(t, r);
        });
      }
    });
  }
});

describe('cpspec fuzz', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(root, 'conformance/bin/cpspec.js'), 'fuzz', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

  test('a clean run exits 0 and says how many runs and which seed', () => {
    const r = cli('--target', 'model', '--runs', '50', '--seed', '3');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/50 runs, no failure \(seed 3\)/);
  });
  test('a broken target exits 1 with the seed, path, minimal scenario and a repro that replays', () => {
    const dir = save();
    const r = cli('--target', 'model:drop-on-close', '--runs', '200', '--seed', '5', '--save', dir);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAILURE/);
    expect(r.stdout).toMatch(/seed 5, path /);
    const file = /repro: (.*\.json)/.exec(r.stdout)![1];
    expect(JSON.parse(readFileSync(file, 'utf8')).scenario.ops.length).toBeGreaterThan(0);
    expect(cli('--target', 'model:drop-on-close', '--replay', file).status).toBe(1);
    expect(cli('--target', 'model', '--replay', file).status).toBe(0);
  });
  test('bad options exit 2', () => {
    expect(cli('--time', 'soon').status).toBe(2);
    expect(cli('--replay', path.join(root, 'package.json')).status).toBe(2);
    expect(cli('--bogus').status).toBe(2);
  });
});

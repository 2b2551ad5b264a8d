// The port fuzzer: it finds nothing on the good targets, it catches deliberately broken ports and shrinks
// them to a small scenario; and the `cpspec fuzz` command (suites, budgets, repros, replay). The corpus
// (fuzz/corpus/) is replayed by ./corpus.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { createNativeTarget } from '../../native/js/target.ts';
import { fuzzPort, readRepro, replay } from '../../fuzz/cli.ts';
import type { PortScenario } from '../../fuzz/port.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
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
      expect((r.repro!.scenario as PortScenario).ops.length).toBeLessThanOrEqual(6);
      // The saved file is a runnable repro: it fails on the broken port and passes on the good ones.
      const saved = readRepro(r.reproFile!);
      await expect(replay(createModelTarget(options), saved)).rejects.toThrow(message);
      await expect(replay(createModelTarget(), saved)).resolves.toBeUndefined();
    });
  }
});

describe('cpspec fuzz', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(root, 'conformance/bin/cpspec.js'), 'fuzz', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

  test('a clean run exits 0 and says how many runs and which seed, for every suite (default all)', () => {
    const r = cli('--target', 'model', '--runs', '20', '--seed', '3');
    expect(r.status, r.stderr).toBe(0);
    for (const suite of ['port', 'sockets', 'framing']) expect(r.stdout).toMatch(new RegExp(`\\[${suite}\\]: 20 runs, no failure \\(seed 3\\)`));
    // A deviation the sockets suite tolerates is said, never silent.
    expect(r.stdout).not.toMatch(/known deviation/); // none is tolerated today (fuzz/sockets.ts KNOWN_DEVIATIONS)
  });
  test('--suite picks suites; --time is split between them', () => {
    const one = cli('--target', 'model', '--suite', 'port', '--runs', '10', '--seed', '3');
    expect(one.status, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/\[port\]: 10 runs/);
    expect(one.stdout).not.toMatch(/\[sockets\]|\[framing\]/);
    const t0 = Date.now();
    const two = cli('--target', 'model', '--suite', 'framing,sockets', '--time', '1s', '--seed', '4');
    expect(two.status, two.stderr).toBe(0);
    expect(two.stdout).toMatch(/\[framing\]: \d+ runs, no failure[\s\S]*\[sockets\]: \d+ runs, no failure/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
  test('a broken target exits 1 with the seed, path, minimal scenario and a repro that replays', () => {
    const dir = save();
    const r = cli('--target', 'model:drop-on-close', '--suite', 'port', '--runs', '200', '--seed', '5', '--save', dir);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAILURE/);
    expect(r.stdout).toMatch(/seed 5, path /);
    const file = /repro: (.*\.json)/.exec(r.stdout)![1];
    expect(JSON.parse(readFileSync(file, 'utf8')).scenario.ops.length).toBeGreaterThan(0);
    expect(cli('--target', 'model:drop-on-close', '--replay', file).status).toBe(1);
    expect(cli('--target', 'model', '--replay', file).status).toBe(0);
  });
  test('bad options exit 2', () => {
    expect(cli('--suite', 'everything').status).toBe(2);
    expect(cli('--suite', 'everything').stderr).toMatch(/unknown fuzz suite 'everything'/);
    expect(cli('--time', 'soon').status).toBe(2);
    expect(cli('--replay', path.join(root, 'package.json')).status).toBe(2);
    expect(cli('--bogus').status).toBe(2);
  });
});

// The sockets-and-pools fuzzer (fuzz/sockets.ts): it finds nothing on the good targets while exercising
// real traffic, it catches deliberately broken targets (a recv cancelled by close never completes; a
// pool-backed receive reports pool-exhausted and loses its bytes) and shrinks them to small scenarios whose
// saved repros replay, and the model deviation it tolerates is real.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Target } from '../../reference/src/target.ts';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { createNativeTarget } from '../../native/js/target.ts';
import { fuzzSuite, readRepro, replay, type Repro } from '../../fuzz/cli.ts';
import {
  allowancesFor,
  dropAbortedRecvOnClose,
  exhaustedOnLastBuffer,
  KNOWN_DEVIATIONS,
  runSocketScenario,
  socketScenarioArb,
  type SocketRunStats,
  type SocketScenario,
} from '../../fuzz/sockets.ts';

const save = () => mkdtempSync(path.join(tmpdir(), 'cpspec-fuzz-sockets-'));
const targets: Array<[string, () => Promise<Target>]> = [
  ['model', async () => createModelTarget()],
  ['native', () => createNativeTarget()],
];

/** A saved repro of a deliberately broken target replays clean on every good one. */
async function passesOnGoodTargets(saved: Repro): Promise<void> {
  for (const [, make] of targets) {
    const t = await make();
    try {
      await expect(replay(t, saved)).resolves.toBeUndefined();
    } finally {
      await t.dispose();
    }
  }
}

describe('sockets fuzzer on good targets', () => {
  for (const [name, make] of targets) {
    test(`${name}: 120 scenarios, no failure, and they move real data through every kind of operation`, async () => {
      const t = await make();
      const total: SocketRunStats = { completions: {}, bytesReceived: 0, connections: 0, poolOps: 0 };
      try {
        const allow = allowancesFor((await t.info()).name);
        const r = await fc.check(
          fc.asyncProperty(socketScenarioArb, async (s) => {
            try {
              const st = await runSocketScenario(t, s, { allow });
              for (const [k, v] of Object.entries(st.completions)) total.completions[k] = (total.completions[k] ?? 0) + v;
              total.bytesReceived += st.bytesReceived;
              total.connections += st.connections;
              total.poolOps += st.poolOps;
            } finally {
              await t.reset();
            }
          }),
          { numRuns: 120, seed: 42 },
        );
        expect(r.failed, `${String(r.errorInstance)}\n${JSON.stringify(r.counterexample)}`).toBe(false);
      } finally {
        await t.dispose();
      }
      // The scenarios are not vacuous: connections, data, eof, aborts, pool traffic and pool-backed receives all happen.
      const c = total.completions;
      expect(total.connections).toBeGreaterThan(100);
      expect(total.bytesReceived).toBeGreaterThan(50);
      expect(total.poolOps).toBeGreaterThan(20);
      for (const k of ['accept:ok', 'connect:ok', 'send:ok', 'recv:ok', 'recv:eof', 'recv:aborted', 'accept:aborted', 'recvPooled:ok', 'recvPooled:aborted']) {
        expect(c[k] ?? 0, `${k} in ${JSON.stringify(c)}`).toBeGreaterThan(0);
      }
    }, 60_000);
  }
});

describe('sockets fuzzer on a deliberately broken target', () => {
  test('a recv whose aborted completion is dropped at close is caught and shrunk to a small scenario', async () => {
    const dir = save();
    const r = await fuzzSuite('sockets', { target: 'model-broken', makeTarget: async () => dropAbortedRecvOnClose(createModelTarget()), runs: 300, seed: 7, saveDir: dir, quietMs: 150 });
    expect(r.failed).toBe(true);
    expect(r.repro!.error).toMatch(/never completed after every socket was closed \(nothing more for 150 ms\): op \d+ \(recv/);
    const ops = (r.repro!.scenario as SocketScenario).ops;
    // listen, connect, a recv, plain or pool-backed (and at most a couple of steps more): the end closes the socket.
    expect(ops.length, JSON.stringify(ops)).toBeLessThanOrEqual(5);
    expect(ops.some((o) => o.op === 'recv' || o.op === 'recvPooled'), JSON.stringify(ops)).toBe(true);
    // The saved file is a runnable repro: it fails on the broken target and passes on the good ones.
    const saved = readRepro(r.reproFile!);
    expect(saved.suite).toBe('sockets');
    await expect(replay(dropAbortedRecvOnClose(createModelTarget()), saved)).rejects.toThrow(/never completed/);
    await passesOnGoodTargets(saved);
  }, 60_000);

  test('the same bug under the native target is caught too', async () => {
    const r = await fuzzSuite('sockets', { target: 'native-broken', makeTarget: async () => dropAbortedRecvOnClose(await createNativeTarget()), runs: 300, seed: 8, saveDir: save(), quietMs: 150 });
    expect(r.failed).toBe(true);
    expect(r.repro!.error).toMatch(/never completed/);
    expect((r.repro!.scenario as SocketScenario).ops.length).toBeLessThanOrEqual(5);
  }, 60_000);
});

/**
 * Pool-backed receives through a pool of one buffer (CP-POOL-005's story): the first takes the buffer, the
 * second finds the pool empty at once (pool-exhausted, nothing read), acquire on the bound pool is invalid,
 * after the release the next one gets the following bytes, and a buffer given back cannot be released again.
 */
const pooledStory: SocketScenario = {
  suite: 'sockets',
  ops: [
    { op: 'listen' },
    { op: 'connect', l: 0 },
    { op: 'pool', bufferSize: 64, count: 1 },
    { op: 'send', s: 0, size: 100 },
    { op: 'pump', ms: 50 },
    { op: 'recvPooled', s: 1, p: 0, length: 10 },
    { op: 'pump', ms: 50 },
    { op: 'recvPooled', s: 1, p: 0, length: 4096 },
    { op: 'pump', ms: 50 },
    { op: 'acquire', p: 0 },
    { op: 'release', p: 0, b: 0, kind: 'held' },
    { op: 'recvPooled', s: 1, p: 0, length: 4096 },
    { op: 'pump', ms: 50 },
    { op: 'release', p: 0, b: 0, kind: 'held' },
    { op: 'release', p: 0, b: 0, kind: 'double' },
    { op: 'stats', p: 0 },
  ],
};

describe('pool-backed receives in the sockets fuzzer', () => {
  const story: Array<[string, () => Promise<Target>]> = [
    ['model', async () => createModelTarget()],
    ['native:epoll', () => createNativeTarget({ backend: 'epoll' })],
    ['native:uring', () => createNativeTarget({ backend: 'uring' })],
  ];
  for (const [name, make] of story) {
    test(`${name}: a pool of one buffer runs dry and refills, every byte in order`, async () => {
      const t = await make();
      try {
        const st = await runSocketScenario(t, pooledStory);
        expect(st.completions['recvPooled:ok'], JSON.stringify(st.completions)).toBeGreaterThanOrEqual(2);
        expect(st.completions['recvPooled:pool-exhausted'], JSON.stringify(st.completions)).toBe(1);
        expect(st.bytesReceived).toBeGreaterThan(10);
      } finally {
        await t.dispose();
      }
    });
  }

  test('a pool-backed receive that loses its bytes, reporting pool-exhausted on the last buffer, is caught and shrunk', async () => {
    const r = await fuzzSuite('sockets', { target: 'model-broken-pool', makeTarget: async () => exhaustedOnLastBuffer(createModelTarget()), runs: 300, seed: 9, saveDir: save(), quietMs: 150 });
    expect(r.failed).toBe(true);
    expect(r.repro!.error).toMatch(/pool-exhausted, but at most 0 of pool \d+'s \d+ buffers were in use/);
    const ops = (r.repro!.scenario as SocketScenario).ops;
    // listen, connect, pool, send, recvPooled (and at most a couple of steps more).
    expect(ops.length, JSON.stringify(ops)).toBeLessThanOrEqual(7);
    for (const k of ['pool', 'send', 'recvPooled']) expect(ops.some((o) => o.op === k), `${k} in ${JSON.stringify(ops)}`).toBe(true);
    const saved = readRepro(r.reproFile!);
    await expect(replay(exhaustedOnLastBuffer(createModelTarget()), saved)).rejects.toThrow(/pool-exhausted, but/);
    await passesOnGoodTargets(saved);
  }, 60_000);
});

describe('known deviations tolerated by the sockets suite', () => {
  test('the list is current: every entry names a target and a repro (empty today)', () => {
    for (const [name, list] of Object.entries(KNOWN_DEVIATIONS)) for (const d of list) expect(d.repro.ops.length, name).toBeGreaterThan(0);
    expect(Object.keys(KNOWN_DEVIATIONS)).toEqual([]);
  });
  for (const [name, list] of Object.entries(KNOWN_DEVIATIONS)) {
    for (const d of list) {
      test(`${name}: ${d.allow} still exists (else drop it from KNOWN_DEVIATIONS)`, async () => {
        expect(name).toBe('cpspec-model');
        const t = createModelTarget();
        try {
          await expect(runSocketScenario(t, d.repro)).rejects.toThrow(/received \d+ bytes, but .* sent only/);
          await t.reset();
          await expect(runSocketScenario(t, d.repro, { allow: [d.allow] })).resolves.toBeDefined();
        } finally {
          await t.dispose();
        }
        // The native back-end holds the strict invariant on the same scenario.
        const n = await createNativeTarget();
        try {
          await expect(runSocketScenario(n, d.repro)).resolves.toBeDefined();
        } finally {
          await n.dispose();
        }
      });
    }
  }
});

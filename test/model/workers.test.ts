// runWorkers on the model: the virtual-time simulation, the concurrency gate, LIFO release, traces.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createModelTarget, type ModelOptions } from '../../reference/src/model/index.ts';
import { HARNESS_THREAD, TRACE_EVENTS as EV, type Trace, type WorkerProgram, type WorkerStep } from '../../reference/src/target.ts';

const COST = 100; // the model's default virtual cost of a dequeue or a posted packet, ns

interface Ev {
  t: number;
  thread: number;
  ev: number;
  key: number;
}
function events(tr: Trace): Ev[] {
  return Array.from(tr.t, (t, i) => ({ t, thread: tr.thread[i], ev: tr.ev[i], key: tr.key[i] }));
}
function ofThread(tr: Trace, thread: number): Ev[] {
  return events(tr).filter((e) => e.thread === thread);
}
function gotKeys(tr: Trace, thread?: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < tr.ev.length; i++) if (tr.ev[i] === EV.got && (thread === undefined || tr.thread[i] === thread)) out.push(tr.key[i]);
  return out;
}
function count(tr: Trace, ev: number, thread?: number): number {
  let n = 0;
  for (let i = 0; i < tr.ev.length; i++) if (tr.ev[i] === ev && (thread === undefined || tr.thread[i] === thread)) n++;
  return n;
}

/** Sorted by time, equal lengths, known codes, threads in range, one start per thread, at most one exit. */
function checkWellFormed(tr: Trace): void {
  const n = tr.t.length;
  expect([tr.thread.length, tr.ev.length, tr.key.length]).toEqual([n, n, n]);
  for (let i = 0; i < n; i++) {
    if (i > 0 && tr.t[i] < tr.t[i - 1]) expect.fail(`event ${i} out of time order`);
    if (tr.ev[i] > EV['port-closed']) expect.fail(`event ${i} has code ${tr.ev[i]}`);
    if (tr.thread[i] >= tr.threads && tr.thread[i] !== HARNESS_THREAD) expect.fail(`event ${i} thread ${tr.thread[i]}`);
  }
  for (let th = 0; th < tr.threads; th++) {
    expect(count(tr, EV.start, th)).toBe(1);
    expect(count(tr, EV.exit, th)).toBeLessThanOrEqual(1);
  }
  expect(count(tr, EV.exit)).toBe(tr.threads - tr.unfinished);
}

/**
 * The largest number of threads running at once in a trace. A thread runs from a 'got' until its next
 * 'wait', 'block-enter' or 'exit'; 'block-leave' resumes it if it was running at 'block-enter'. Events are
 * taken in trace order (the model records a slot release before the release it causes).
 */
function maxRunning(tr: Trace): number {
  const running = new Set<number>();
  const heldBeforeBlock = new Set<number>();
  let max = 0;
  for (let i = 0; i < tr.ev.length; i++) {
    const th = tr.thread[i];
    switch (tr.ev[i]) {
      case EV.got:
        running.add(th);
        break;
      case EV.wait:
      case EV.exit:
        running.delete(th);
        break;
      case EV['block-enter']:
        if (running.delete(th)) heldBeforeBlock.add(th);
        break;
      case EV['block-leave']:
        if (heldBeforeBlock.delete(th)) running.add(th);
        break;
    }
    max = Math.max(max, running.size);
  }
  return max;
}

async function busyWorkers(concurrency: number, opts: ModelOptions = {}): Promise<Trace> {
  const t = createModelTarget(opts);
  const port = await t.createPort(concurrency);
  for (let i = 0; i < 64; i++) await t.post(port, { key: i });
  const busy: WorkerProgram = { steps: [{ op: 'dequeue', timeoutMs: 5 }, { op: 'spin', us: 200 }], repeat: -1 };
  const tr = await t.runWorkers(port, Array.from({ length: 8 }, () => busy));
  checkWellFormed(tr);
  expect(gotKeys(tr).sort((a, b) => a - b)).toEqual([...Array(64).keys()]);
  expect(tr.unfinished).toBe(0);
  return tr;
}

/** Four waiters parked in order 0, 1, 2, 3 (staggered sleeps), then thread 4 posts four packets. */
async function staggeredWaiters(opts: ModelOptions = {}): Promise<number[]> {
  const t = createModelTarget(opts);
  const port = await t.createPort(8);
  const programs: WorkerProgram[] = [0, 1, 2, 3].map((i) => ({ steps: [{ op: 'sleep', us: i * 100 }, { op: 'dequeue', timeoutMs: -1 }] }));
  programs.push({ steps: [{ op: 'sleep', us: 1000 }, { op: 'post', key: 10, count: 4 }] });
  const tr = await t.runWorkers(port, programs);
  checkWellFormed(tr);
  expect(tr.unfinished).toBe(0);
  return [0, 1, 2, 3].map((th) => gotKeys(tr, th)[0]);
}

describe('model workers: traces', () => {
  it('records start, wait, got, post and exit with virtual times and op costs', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const tr = await t.runWorkers(port, [
      { steps: [{ op: 'sleep', us: 1 }, { op: 'post', key: 5, count: 2, bytes: 3 }] },
      { steps: [{ op: 'dequeue', timeoutMs: -1, max: 4 }] },
    ]);
    expect(events(tr)).toEqual([
      { t: 0, thread: 0, ev: EV.start, key: 0 },
      { t: 0, thread: 1, ev: EV.start, key: 0 },
      { t: 0, thread: 1, ev: EV.wait, key: 0 },
      { t: 1000, thread: 0, ev: EV.post, key: 5 },
      { t: 1000 + COST, thread: 1, ev: EV.got, key: 5 },
      { t: 1000 + COST, thread: 0, ev: EV.post, key: 6 },
      { t: 1000 + COST, thread: 1, ev: EV.exit, key: 0 },
      { t: 1000 + 2 * COST, thread: 0, ev: EV.exit, key: 0 },
    ]);
    expect(tr.leftover).toBe(1);
    // the leftover packet stays in the port (token = key, bytes from the step)
    expect(await t.dequeue(port, 0)).toEqual({ kind: 'packet', packet: { key: 6, bytes: 3, token: 6, status: 'ok', nativeError: 0 } });
  });

  it('post keys are key + iteration*count + i', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const tr = await t.runWorkers(port, [{ steps: [{ op: 'post', key: 100, count: 3 }], repeat: 3 }]);
    expect(events(tr).filter((e) => e.ev === EV.post).map((e) => e.key)).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 108]);
    expect(tr.leftover).toBe(9);
  });

  it('packets posted from JS before the run are visible to workers; a batch dequeue takes up to max', async () => {
    const t = createModelTarget();
    const port = await t.createPort(2);
    for (let i = 0; i < 10; i++) await t.post(port, { key: i });
    const tr = await t.runWorkers(port, [{ steps: [{ op: 'dequeue', timeoutMs: 0, max: 4 }], repeat: -1 }]);
    const gots = ofThread(tr, 0).filter((e) => e.ev === EV.got);
    expect(gots.map((e) => e.key)).toEqual([...Array(10).keys()]);
    expect(gots.map((e) => e.t)).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3].map((k) => k * COST));
    expect(count(tr, EV.timeout, 0)).toBe(1);
    expect(tr.leftover).toBe(0);
  });

  it('a pending JS dequeue is a waiter of the run: older than the workers (LIFO) and behind the gate', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    let js: number | string | undefined;
    const pending = t.dequeue(port, -1).then((r) => (js = r.kind === 'packet' ? r.packet.key : r.kind));
    const tr = await t.runWorkers(port, [
      { steps: [{ op: 'dequeue', timeoutMs: -1 }, { op: 'post', key: 9 }, { op: 'spin', us: 1000 }, { op: 'dequeue', timeoutMs: 0 }] },
      { steps: [{ op: 'sleep', us: 10 }, { op: 'post', key: 1 }] },
    ]);
    // worker 0 waited more recently than the JS dequeue, so it gets key 1; key 9, posted while worker 0
    // holds the only slot, cannot release the JS dequeue, and worker 0's next dequeue takes it (P5)
    expect(gotKeys(tr, 0)).toEqual([1, 9]);
    expect(tr.leftover).toBe(0);
    await t.post(port, { key: 3 });
    await pending;
    expect(js).toBe(3);
  });

  it('repeat 0 starts and exits; spin/sleep-only programs finish without simulating every step', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const tr = await t.runWorkers(port, [
      { steps: [{ op: 'dequeue', timeoutMs: -1 }], repeat: 0 },
      { steps: [{ op: 'spin', us: 1000 }, { op: 'sleep', us: 500 }], repeat: 10 },
    ]);
    expect(events(tr)).toEqual([
      { t: 0, thread: 0, ev: EV.start, key: 0 },
      { t: 0, thread: 1, ev: EV.start, key: 0 },
      { t: 0, thread: 0, ev: EV.exit, key: 0 },
      { t: 15_000_000, thread: 1, ev: EV.exit, key: 0 },
    ]);
    const start = performance.now();
    const long = await t.runWorkers(port, [{ steps: Array.from({ length: 64 }, () => ({ op: 'spin', us: 0 }) as const), repeat: 100_000_000 }]);
    expect(performance.now() - start).toBeLessThan(1000);
    expect(long.unfinished).toBe(0);
  });
});

describe('model workers: concurrency gate', () => {
  for (const n of [1, 2]) {
    it(`concurrency ${n}: 8 busy workers never run more than ${n} at once (and do reach ${n})`, async () => {
      const tr = await busyWorkers(n);
      expect(maxRunning(tr)).toBe(n);
      expect(gateViolations(tr, n)).toEqual([]);
    });
  }

  it('concurrency 0 resolves to the hardware threads (4, or options.hardwareThreads)', async () => {
    expect(maxRunning(await busyWorkers(0))).toBe(4);
    expect(maxRunning(await busyWorkers(0, { hardwareThreads: 3 }))).toBe(3);
  });

  it('P5: with N=1 and a backlog the running thread gets the next packet at once; the other stays parked', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    for (let i = 0; i < 10; i++) await t.post(port, { key: i });
    const prog: WorkerProgram = { steps: [{ op: 'dequeue', timeoutMs: 1 }, { op: 'spin', us: 10 }], repeat: -1 };
    const tr = await t.runWorkers(port, [prog, prog]);
    checkWellFormed(tr);
    expect(gotKeys(tr, 0)).toEqual([...Array(10).keys()]);
    expect(gotKeys(tr, 1)).toEqual([]);
    const th0 = ofThread(tr, 0);
    for (let i = 0; i < th0.length; i++) {
      if (th0[i].ev !== EV.got) continue;
      expect(th0[i - 1].ev).toBe(EV.wait);
      expect(th0[i].t - th0[i - 1].t).toBe(COST);
    }
  });

  it('a blocking region releases the slot; a plain sleep keeps it', async () => {
    async function run(op: 'block' | 'sleep'): Promise<Trace> {
      const t = createModelTarget();
      const port = await t.createPort(1);
      await t.post(port, { key: 1 });
      await t.post(port, { key: 2 });
      const tr = await t.runWorkers(port, [
        { steps: [{ op: 'dequeue', timeoutMs: 100 }, { op, us: 1000 }] },
        { steps: [{ op: 'dequeue', timeoutMs: 100 }] },
      ]);
      checkWellFormed(tr);
      expect(gotKeys(tr)).toEqual([1, 2]);
      return tr;
    }
    const blocked = await run('block');
    const leave = ofThread(blocked, 0).find((e) => e.ev === EV['block-leave'])!;
    const got1 = ofThread(blocked, 1).find((e) => e.ev === EV.got)!;
    expect(ofThread(blocked, 0).filter((e) => e.ev === EV['block-enter']).length).toBe(1);
    expect(got1.t).toBe(COST); // released while thread 0 is inside the region
    expect(got1.t).toBeLessThan(leave.t);

    const slept = await run('sleep');
    expect(count(slept, EV['block-enter'])).toBe(0);
    const exit0 = ofThread(slept, 0).find((e) => e.ev === EV.exit)!;
    const got1s = ofThread(slept, 1).find((e) => e.ev === EV.got)!;
    expect(exit0.t).toBe(COST + 1_000_000);
    expect(got1s.t).toBe(exit0.t); // only when thread 0 gives its slot back
    expect(maxRunning(slept)).toBe(1);
  });

  it('after a blocking region running may exceed N, and no waiter is released while running >= N', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    for (const key of [1, 2, 3]) await t.post(port, { key });
    const tr = await t.runWorkers(port, [
      { steps: [{ op: 'dequeue', timeoutMs: -1 }, { op: 'block', us: 1000 }, { op: 'spin', us: 5000 }] }, // A
      { steps: [{ op: 'dequeue', timeoutMs: -1 }, { op: 'spin', us: 2000 }] }, // B: runs while A is in its region
      { steps: [{ op: 'sleep', us: 50 }, { op: 'dequeue', timeoutMs: 100 }] }, // C: parked from 50 us
    ]);
    checkWellFormed(tr);
    expect(gotKeys(tr, 0)).toEqual([1]);
    expect(gotKeys(tr, 1)).toEqual([2]);
    expect(gotKeys(tr, 2)).toEqual([3]);
    expect(maxRunning(tr)).toBe(2); // A is back from its region while B still runs
    const exitA = ofThread(tr, 0).find((e) => e.ev === EV.exit)!;
    const exitB = ofThread(tr, 1).find((e) => e.ev === EV.exit)!;
    const gotC = ofThread(tr, 2).find((e) => e.ev === EV.got)!;
    expect(exitB.t).toBe(COST + 2_000_000);
    expect(exitA.t).toBe(COST + 6_000_000);
    // B's exit leaves running = 1 (A took its slot back): C stays parked until A exits
    expect(gotC.t).toBe(exitA.t);
  });

  it('LIFO: the most recent waiting worker gets the next packet', async () => {
    expect(await staggeredWaiters()).toEqual([13, 12, 11, 10]);
  });
});

describe('model workers: close, timeouts, deadline', () => {
  it('closeAfterMs wakes every waiting worker (and a pending JS dequeue) with closed; queued packets are leftover', async () => {
    const t = createModelTarget();
    const port = await t.createPort(2);
    const js = t.dequeue(port, -1);
    const tr = await t.runWorkers(
      port,
      [
        { steps: [{ op: 'dequeue', timeoutMs: -1 }], repeat: -1 },
        { steps: [{ op: 'dequeue', timeoutMs: -1 }], repeat: -1 },
        { steps: [{ op: 'dequeue', timeoutMs: 10_000 }], repeat: -1 },
        { steps: [{ op: 'sleep', us: 4000 }, { op: 'spin', us: 1000 }, { op: 'post', key: 1 }] },
      ],
      { closeAfterMs: 5 },
    );
    checkWellFormed(tr);
    expect(await js).toEqual({ kind: 'closed' });
    const evs = events(tr);
    const closedAt = evs.findIndex((e) => e.ev === EV['port-closed']);
    expect(evs[closedAt]).toEqual({ t: 5_000_000, thread: HARNESS_THREAD, ev: EV['port-closed'], key: 0 });
    for (const th of [0, 1, 2]) {
      const mine = ofThread(tr, th);
      expect(mine.slice(-2).map((e) => [e.t, e.ev])).toEqual([
        [5_000_000, EV.closed],
        [5_000_000, EV.exit],
      ]);
      expect(evs.findIndex((e) => e.thread === th && e.ev === EV.closed)).toBeGreaterThan(closedAt);
    }
    // thread 3 announces its post at 5 ms, just after the close (the harness goes first at equal times);
    // the packet would be queued 100 ns later, on a closed port: it is dropped
    expect(evs.findIndex((e) => e.thread === 3 && e.ev === EV.post)).toBeGreaterThan(closedAt);
    expect(count(tr, EV.post, 3)).toBe(1);
    expect(tr.leftover).toBe(0);
    expect(tr.unfinished).toBe(0);
    expect(await t.dequeue(port, -1)).toEqual({ kind: 'closed' });
    await expect(t.post(port, { key: 1 })).rejects.toMatchObject({ code: 'closed' });
  });

  it('packets queued when the harness closes the port are counted as leftover', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const tr = await t.runWorkers(port, [{ steps: [{ op: 'post', key: 0, count: 3 }] }], { closeAfterMs: 1 });
    expect(tr.leftover).toBe(3);
    expect(count(tr, EV['port-closed'], HARNESS_THREAD)).toBe(1);
  });

  it('worker timeouts are virtual: a 10 s timeout ends at t = cost + 10 s without waiting', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const start = performance.now();
    const tr = await t.runWorkers(port, [{ steps: [{ op: 'dequeue', timeoutMs: 10_000 }], repeat: -1 }, { steps: [{ op: 'dequeue', timeoutMs: 0 }] }]);
    expect(performance.now() - start).toBeLessThan(1000);
    expect(ofThread(tr, 0).slice(1)).toEqual([
      { t: 0, thread: 0, ev: EV.wait, key: 0 },
      { t: COST + 10e9, thread: 0, ev: EV.timeout, key: 0 },
      { t: COST + 10e9, thread: 0, ev: EV.exit, key: 0 },
    ]);
    expect(ofThread(tr, 1).slice(-2).map((e) => [e.t, e.ev])).toEqual([
      [COST, EV.timeout],
      [COST, EV.exit],
    ]);
  });

  it('the deadline cuts the run short: unfinished workers vanish and the harness closes the port', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const js = t.dequeue(port, -1);
    const tr = await t.runWorkers(
      port,
      [
        { steps: [{ op: 'dequeue', timeoutMs: 60_000 }], repeat: -1 },
        { steps: [{ op: 'spin', us: 10_000_000 }], repeat: 10 },
        { steps: [{ op: 'post', key: 1, count: 2 }] },
        { steps: [{ op: 'sleep', us: 10 }, { op: 'post', key: 7 }, { op: 'dequeue', timeoutMs: -1 }] },
      ],
      { deadlineMs: 50 },
    );
    checkWellFormed(tr);
    expect(tr.unfinished).toBe(3);
    expect(ofThread(tr, 2).at(-1)!.ev).toBe(EV.exit);
    expect(count(tr, EV.exit)).toBe(1);
    expect(events(tr).at(-1)).toEqual({ t: 50e6, thread: HARNESS_THREAD, ev: EV['port-closed'], key: 0 });
    expect(await js).toEqual({ kind: 'closed' }); // the older JS waiter got nothing (LIFO), then the close
    expect(gotKeys(tr).sort()).toEqual([1, 2, 7]);
    expect(tr.leftover).toBe(0);
    await expect(t.post(port, { key: 42 })).rejects.toMatchObject({ code: 'closed' });
  });

  it('a worker waiting forever is unfinished: the run ends at the deadline with the port closed', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const tr = await t.runWorkers(port, [{ steps: [{ op: 'dequeue', timeoutMs: -1 }] }], { deadlineMs: 2000 });
    expect(tr.unfinished).toBe(1);
    expect(events(tr).map((e) => [e.t, e.thread, e.ev])).toEqual([
      [0, 0, EV.start],
      [0, 0, EV.wait],
      [2e9, HARNESS_THREAD, EV['port-closed']],
    ]);
    expect(await t.dequeue(port, -1)).toEqual({ kind: 'closed' });
  });

  it('a run whose workers all finish leaves the port open', async () => {
    const t = createModelTarget();
    const port = await t.createPort(1);
    const tr = await t.runWorkers(port, [{ steps: [{ op: 'post', key: 4 }] }]);
    expect(count(tr, EV['port-closed'])).toBe(0);
    expect(await t.dequeue(port, 0)).toMatchObject({ kind: 'packet', packet: { key: 4 } });
  });
});

describe('model workers: determinism and scale', () => {
  const step: fc.Arbitrary<WorkerStep> = fc.oneof(
    fc.record({ op: fc.constant('dequeue' as const), timeoutMs: fc.constantFrom(0, 1, 5, -1), max: fc.constantFrom(1, 1, 3) }),
    fc.record({ op: fc.constantFrom('spin' as const, 'sleep' as const, 'block' as const), us: fc.integer({ min: 0, max: 300 }) }),
    fc.record({ op: fc.constant('post' as const), key: fc.constant(0), count: fc.integer({ min: 1, max: 5 }) }),
  );
  const programs = fc.array(
    fc.record({ steps: fc.array(step, { minLength: 1, maxLength: 6 }), repeat: fc.constantFrom(0, 1, 3, 20, -1) }),
    { minLength: 1, maxLength: 12 },
  );
  function normalise(ps: WorkerProgram[]): WorkerProgram[] {
    // unique keys per post step; repeat -1 only with a dequeue step
    return ps.map((p, pi) => ({
      repeat: p.repeat === -1 && !p.steps.some((s) => s.op === 'dequeue') ? 2 : p.repeat,
      steps: p.steps.map((s, si) => (s.op === 'post' ? { ...s, key: (pi * 64 + si) * 1e9 } : s)),
    }));
  }

  it('same programs give identical traces; packets are neither lost nor duplicated', async () => {
    await fc.assert(
      fc.asyncProperty(programs, fc.integer({ min: 1, max: 4 }), fc.constantFrom(-1, 0, 2), async (raw, conc, closeAfterMs) => {
        const ps = normalise(raw);
        const opts: ModelOptions = { maxTraceEvents: 20_000 };
        const run = async (): Promise<Trace> => {
          const t = createModelTarget(opts);
          return t.runWorkers(await t.createPort(conc), ps, { closeAfterMs, deadlineMs: 1000 });
        };
        const a = await run();
        const b = await run();
        expect(sameTrace(a, b)).toBe(true);
        checkWellFormed(a);
        expect(gateViolations(a, conc)).toEqual([]);
        const got = gotKeys(a);
        expect(new Set(got).size).toBe(got.length);
        const posted = new Set(events(a).filter((e) => e.ev === EV.post).map((e) => e.key));
        for (const k of got) expect(posted.has(k)).toBe(true);
        // conservation, unless a post was in flight when the run was cut (trace limit, or deadline at 1 s)
        const inFlight = a.t.length >= 20_000 || events(a).some((e) => e.ev === EV.post && e.t > 1e9 - 1000);
        if (!inFlight && closeAfterMs === -1) expect(got.length + a.leftover).toBe(posted.size);
        else expect(got.length + a.leftover).toBeLessThanOrEqual(posted.size); // posts after a close are dropped
      }),
      { numRuns: 120 },
    );
  });

  it('1 000 000 packets across 4 posting and 8 consuming worker threads: none lost or duplicated', async () => {
    const t = createModelTarget();
    const port = await t.createPort(4);
    const ps: WorkerProgram[] = [];
    for (let i = 0; i < 4; i++) ps.push({ steps: [{ op: 'post', key: i * 250_000, count: 250_000 }] });
    for (let i = 0; i < 8; i++) ps.push({ steps: [{ op: 'dequeue', timeoutMs: 10, max: i < 4 ? 1 : 7 }, { op: 'spin', us: 0 }], repeat: -1 });
    const start = performance.now();
    const tr = await t.runWorkers(port, ps);
    const ms = performance.now() - start;
    console.log(`model: 1M packets simulated in ${ms.toFixed(0)} ms, ${tr.t.length} events, virtual ${(tr.t[tr.t.length - 1] / 1e6).toFixed(1)} ms`);
    expect(ms).toBeLessThan(10_000);
    checkWellFormed(tr);
    expect(tr.unfinished).toBe(0);
    expect(tr.leftover).toBe(0);
    expect(maxRunning(tr)).toBeLessThanOrEqual(4);
    const seen = new Uint8Array(1_000_000);
    let got = 0;
    for (let i = 0; i < tr.ev.length; i++) {
      if (tr.ev[i] !== EV.got) continue;
      got++;
      if (seen[tr.key[i]]++) expect.fail(`key ${tr.key[i]} dequeued twice`);
    }
    expect(got).toBe(1_000_000);
    expect(count(tr, EV.post)).toBe(1_000_000);
  }, 60_000);
});

function sameTrace(a: Trace, b: Trace): boolean {
  const bytes = (x: ArrayBufferView): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return (
    a.threads === b.threads &&
    a.unfinished === b.unfinished &&
    a.leftover === b.leftover &&
    bytes(a.t).equals(bytes(b.t)) &&
    bytes(a.thread).equals(bytes(b.thread)) &&
    bytes(a.ev).equals(bytes(b.ev)) &&
    bytes(a.key).equals(bytes(b.key))
  );
}

/** Events where a thread started running although N threads were already running (the gate forbids it). */
function gateViolations(tr: Trace, n: number): number[] {
  const running = new Set<number>();
  const heldBeforeBlock = new Set<number>();
  const bad: number[] = [];
  for (let i = 0; i < tr.ev.length; i++) {
    const th = tr.thread[i];
    switch (tr.ev[i]) {
      case EV.got:
        if (!running.has(th) && running.size >= n) bad.push(i);
        running.add(th);
        break;
      case EV.wait:
      case EV.exit:
        running.delete(th);
        break;
      case EV['block-enter']:
        if (running.delete(th)) heldBeforeBlock.add(th);
        break;
      case EV['block-leave']:
        if (heldBeforeBlock.delete(th)) running.add(th);
        break;
    }
  }
  return bad;
}

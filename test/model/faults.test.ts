// Deterministic fault injection: each fault must visibly change the model's behaviour, on the JS-level
// API and in runWorkers, and be listed in info().notes.
import { describe, expect, it } from 'vitest';
import { createModelTarget, type ModelFaults } from '../../reference/src/model/index.ts';
import { TRACE_EVENTS as EV, type Target, type Trace, type WorkerProgram } from '../../reference/src/target.ts';

function gotKeys(tr: Trace, thread?: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < tr.ev.length; i++) if (tr.ev[i] === EV.got && (thread === undefined || tr.thread[i] === thread)) out.push(tr.key[i]);
  return out;
}

/** Largest number of threads running at once (from 'got' to the next 'wait'/'exit'; no blocking regions here). */
function maxRunning(tr: Trace): number {
  const running = new Set<number>();
  let max = 0;
  for (let i = 0; i < tr.ev.length; i++) {
    if (tr.ev[i] === EV.got) running.add(tr.thread[i]);
    else if (tr.ev[i] === EV.wait || tr.ev[i] === EV.exit) running.delete(tr.thread[i]);
    max = Math.max(max, running.size);
  }
  return max;
}

async function drain(t: Target, port: number): Promise<number[]> {
  const keys: number[] = [];
  for (;;) {
    const r = await t.dequeue(port, 0);
    if (r.kind !== 'packet') return keys;
    keys.push(r.packet.key);
  }
}

async function busyMaxRunning(faults: ModelFaults): Promise<number> {
  const t = createModelTarget({ faults });
  const port = await t.createPort(2);
  for (let i = 0; i < 64; i++) await t.post(port, { key: i });
  const busy: WorkerProgram = { steps: [{ op: 'dequeue', timeoutMs: 5 }, { op: 'spin', us: 2000 }], repeat: -1 };
  const tr = await t.runWorkers(port, Array.from({ length: 8 }, () => busy));
  expect(gotKeys(tr).length).toBe(64);
  return maxRunning(tr);
}

async function jsWakeOrder(faults: ModelFaults): Promise<number[]> {
  const t = createModelTarget({ faults });
  const port = await t.createPort(1);
  const pending = [t.dequeue(port, -1), t.dequeue(port, -1), t.dequeue(port, -1), t.dequeue(port, -1)];
  for (const key of [1, 2, 3, 4]) await t.post(port, { key });
  return (await Promise.all(pending)).map((r) => (r.kind === 'packet' ? r.packet.key : -1));
}

async function workerWakeOrder(faults: ModelFaults): Promise<number[]> {
  const t = createModelTarget({ faults });
  const port = await t.createPort(8);
  const programs: WorkerProgram[] = [0, 1, 2, 3].map((i) => ({ steps: [{ op: 'sleep', us: i * 100 }, { op: 'dequeue', timeoutMs: -1 }] }));
  programs.push({ steps: [{ op: 'sleep', us: 1000 }, { op: 'post', key: 10, count: 4 }] });
  const tr = await t.runWorkers(port, programs);
  return [0, 1, 2, 3].map((th) => gotKeys(tr, th)[0]);
}

async function workersPostAndConsume(faults: ModelFaults): Promise<{ got: number[]; leftover: number }> {
  const t = createModelTarget({ faults });
  const port = await t.createPort(2);
  const tr = await t.runWorkers(port, [
    { steps: [{ op: 'post', key: 0, count: 30 }] },
    { steps: [{ op: 'dequeue', timeoutMs: 1 }], repeat: -1 },
    { steps: [{ op: 'dequeue', timeoutMs: 1 }], repeat: -1 },
  ]);
  return { got: gotKeys(tr).sort((a, b) => a - b), leftover: tr.leftover };
}

describe('model faults', () => {
  it('info().notes lists the faults in effect (none for a clean model)', async () => {
    expect((await createModelTarget().info()).notes).toEqual([]);
    const notes = (await createModelTarget({ faults: { noConcurrencyCap: true, fifoWake: true, dropEvery: 3, duplicateEvery: 2, dropOnClose: true } }).info()).notes!;
    expect(notes).toHaveLength(5);
    for (const word of ['noConcurrencyCap', 'fifoWake', 'dropEvery 3', 'duplicateEvery 2', 'dropOnClose']) {
      expect(notes.some((n) => n.includes(word))).toBe(true);
    }
  });

  it('noConcurrencyCap: 8 busy workers on a concurrency-2 port all run at once', async () => {
    expect(await busyMaxRunning({})).toBe(2);
    expect(await busyMaxRunning({ noConcurrencyCap: true })).toBe(8);
  });

  it('fifoWake: JS waiters and worker waiters are released oldest first', async () => {
    expect(await jsWakeOrder({})).toEqual([4, 3, 2, 1]);
    expect(await jsWakeOrder({ fifoWake: true })).toEqual([1, 2, 3, 4]);
    expect(await workerWakeOrder({})).toEqual([13, 12, 11, 10]);
    expect(await workerWakeOrder({ fifoWake: true })).toEqual([10, 11, 12, 13]);
  });

  it('dropEvery: every Nth posted packet disappears (JS and workers)', async () => {
    const t = createModelTarget({ faults: { dropEvery: 3 } });
    const port = await t.createPort(1);
    for (let i = 1; i <= 9; i++) await t.post(port, { key: i });
    expect(await drain(t, port)).toEqual([1, 2, 4, 5, 7, 8]);
    expect(await workersPostAndConsume({})).toEqual({ got: [...Array(30).keys()], leftover: 0 });
    const w = await workersPostAndConsume({ dropEvery: 3 });
    expect(w.got).toEqual([...Array(30).keys()].filter((k) => (k + 1) % 3 !== 0));
    expect(w.leftover).toBe(0);
  });

  it('duplicateEvery: every Nth posted packet is queued twice (JS and workers)', async () => {
    const t = createModelTarget({ faults: { duplicateEvery: 2 } });
    const port = await t.createPort(1);
    for (let i = 1; i <= 4; i++) await t.post(port, { key: i });
    expect(await drain(t, port)).toEqual([1, 2, 2, 3, 4, 4]);
    const w = await workersPostAndConsume({ duplicateEvery: 2 });
    expect(w.got.length).toBe(45);
    expect(new Set(w.got).size).toBe(30);
  });

  it('the drop/duplicate count is per port and shared by JS and worker posts', async () => {
    const t = createModelTarget({ faults: { dropEvery: 2 } });
    const a = await t.createPort(1);
    const b = await t.createPort(1);
    await t.post(a, { key: 1 }); // a: 1st
    await t.post(b, { key: 2 }); // b: 1st
    const tr = await t.runWorkers(a, [{ steps: [{ op: 'post', key: 10, count: 2 }] }]); // a: 2nd (dropped), 3rd
    expect(tr.leftover).toBe(2);
    expect(await drain(t, a)).toEqual([1, 11]);
    expect(await drain(t, b)).toEqual([2]);
  });

  it('dropOnClose: close returns [] and the harness close drains nothing', async () => {
    for (const faults of [{}, { dropOnClose: true }]) {
      const t = createModelTarget({ faults });
      const port = await t.createPort(1);
      for (let i = 0; i < 3; i++) await t.post(port, { key: i });
      const drained = await t.closePort(port);
      const port2 = await t.createPort(1);
      const tr = await t.runWorkers(port2, [{ steps: [{ op: 'post', key: 0, count: 3 }] }], { closeAfterMs: 1 });
      if ('dropOnClose' in faults) {
        expect(drained).toEqual([]);
        expect(tr.leftover).toBe(0);
      } else {
        expect(drained.map((p) => p.key)).toEqual([0, 1, 2]);
        expect(tr.leftover).toBe(3);
      }
    }
  });
});

// CONC: the concurrency gate, checked on worker traces (real OS threads on native targets).
import assert from 'node:assert/strict';
import type { Target, Trace, TraceEventName } from '../../reference/src/target.ts';
import { checkExactlyOnce, firstTime, keysOf, maxRunning, receivers } from '../../reference/src/trace.ts';
import type { CaseContext, SpecCase } from '../types.ts';
import { assertMaxRunning, busyConsumer, producer, range, runChecked, scaled, withPort } from './helpers.ts';

/** Eight busy waiters on a port of the given concurrency, fed a backlog; returns the trace. */
async function eightBusyWaiters(t: Target, ctx: CaseContext, concurrency: number) {
  const packets = scaled(ctx, 300, 60);
  return withPort(t, concurrency, async (port) => {
    // The producer starts after the waiters are parked, so every packet meets eight waiting threads.
    const programs = [...Array.from({ length: 8 }, () => busyConsumer(300, 400)), producer(0, packets, 20_000)];
    const trace = await runChecked(t, port, programs, { deadlineMs: 60_000 }, ctx);
    const problem = checkExactlyOnce(range(0, packets), keysOf(trace, 'got'));
    assert.equal(problem, undefined, `packets: ${problem}`);
    return trace;
  });
}

export const concCases: SpecCase[] = [
  {
    id: 'CP-CONC-001',
    async run(t, ctx) {
      const trace = await eightBusyWaiters(t, ctx, 1);
      ctx.log(`at most ${assertMaxRunning(trace, 1)} thread(s) ran at once`);
    },
  },
  {
    id: 'CP-CONC-002',
    async run(t, ctx) {
      const trace = await eightBusyWaiters(t, ctx, 2);
      ctx.log(`at most ${assertMaxRunning(trace, 2)} thread(s) ran at once`);
    },
  },
  {
    id: 'CP-CONC-003',
    async run(t, ctx) {
      const trace = await eightBusyWaiters(t, ctx, 2);
      const m = maxRunning(trace);
      assert.ok(m.max >= 2, `with concurrency 2 and a backlog, never more than ${m.max} thread ran at once`);
    },
  },
  {
    id: 'CP-CONC-004',
    async run(t, ctx) {
      const packets = scaled(ctx, 100, 20);
      await withPort(t, 1, async (port) => {
        const programs = [...Array.from({ length: 4 }, () => busyConsumer(50, 300)), producer(0, packets, 20_000)];
        const trace = await runChecked(t, port, programs, { deadlineMs: 30_000 }, ctx);
        const { byKey, duplicates } = receivers(trace);
        assert.deepEqual(duplicates, [], 'packets received twice');
        assert.equal(byKey.size, packets, `${packets - byKey.size} packets were not received`);
        const takers = new Set(byKey.values());
        assert.equal(
          takers.size,
          1,
          `the backlog was spread over threads ${[...takers].join(', ')}: the running thread must take the next packet when it dequeues again, and no other waiter may be released while it runs`,
        );
      });
    },
  },
  {
    id: 'CP-CONC-005',
    async run(t, ctx) {
      await withPort(t, 1, async (port) => {
        const once = { steps: [{ op: 'dequeue' as const, timeoutMs: 5000 }, { op: 'spin' as const, us: 20_000 }], repeat: 1 };
        const trace = await runChecked(t, port, [once, once, producer(0, 2, 20_000)], { deadlineMs: 30_000 }, ctx);
        const { byKey } = receivers(trace);
        assert.equal(byKey.size, 2, `only ${byKey.size} of 2 packets were dequeued: the slot of the thread that exited was not given back`);
        assert.notEqual(byKey.get(0), byKey.get(1), 'each packet should go to a different thread (each takes one and exits)');
        const first = byKey.get(0)!;
        const exitOfFirst = firstEventTime(trace, first, 'exit');
        const gotSecond = firstEventTime(trace, byKey.get(1)!, 'got');
        assert.ok(gotSecond >= exitOfFirst, 'with concurrency 1 the second thread ran before the first one left');
      });
    },
  },
  {
    id: 'CP-CONC-006',
    async run(t, ctx) {
      await withPort(t, 1, async (port) => {
        const blocker = { steps: [{ op: 'dequeue' as const, timeoutMs: 5000 }, { op: 'block' as const, us: 150_000 }], repeat: 1 };
        const trace = await runChecked(t, port, [blocker, blocker, producer(0, 2, 20_000)], { deadlineMs: 30_000 }, ctx);
        const { byKey } = receivers(trace);
        assert.equal(byKey.size, 2, `only ${byKey.size} of 2 packets were dequeued`);
        const first = byKey.get(0)!;
        const second = byKey.get(1)!;
        assert.notEqual(first, second);
        const leave = firstEventTime(trace, first, 'block-leave');
        const got = firstEventTime(trace, second, 'got');
        assert.ok(
          got < leave,
          `the second packet was dequeued ${((got - leave) / 1e6).toFixed(1)} ms after the first thread left its blocking region: the region did not release the slot`,
        );
      });
    },
  },
];

function firstEventTime(trace: Trace, thread: number, ev: TraceEventName): number {
  const t = firstTime(trace, thread, ev);
  assert.ok(t !== undefined, `thread ${thread} has no '${ev}' event in the trace`);
  return t;
}

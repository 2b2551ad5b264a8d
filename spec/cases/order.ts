// ORDER: FIFO packets, LIFO waiters.
import assert from 'node:assert/strict';
import type { WorkerProgram } from '../../reference/src/target.ts';
import { checkExactlyOnce, keysOf, receivers } from '../../reference/src/trace.ts';
import type { SpecCase } from '../types.ts';
import { busyConsumer, producer, range, runChecked, scaled, withPort } from './helpers.ts';

/** Index of the first place where `got` departs from `want`, or -1. */
function firstDeparture(got: number[], want: number[]): number {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) return i;
  return -1;
}

function assertSequence(got: number[], want: number[], what: string): void {
  const i = firstDeparture(got, want);
  assert.equal(i, -1, `${what}: position ${i} holds ${got[i]} where ${want[i]} was posted (received ${got.length} of ${want.length})`);
}

export const orderCases: SpecCase[] = [
  {
    id: 'CP-ORDER-001',
    async run(t, ctx) {
      const n = scaled(ctx, 10_000, 500);
      const batch = ctx.info.capabilities.includes('port.batch');
      await withPort(t, 1, async (port) => {
        for (let k = 0; k < n; k++) await t.post(port, { key: k, token: k });
        const got: number[] = [];
        while (got.length < n) {
          if (batch) {
            const r = await t.dequeueMany(port, 1024, 1000);
            assert.equal(r.kind, 'packets', `after ${got.length} packets: ${JSON.stringify(r)}`);
            if (r.kind === 'packets') got.push(...r.packets.map((p) => p.key));
          } else {
            const r = await t.dequeue(port, 1000);
            assert.equal(r.kind, 'packet', `after ${got.length} packets: ${JSON.stringify(r)}`);
            if (r.kind === 'packet') got.push(r.packet.key);
          }
        }
        assertSequence(got, range(0, n), 'single consumer');
      });
    },
  },
  {
    id: 'CP-ORDER-002',
    async run(t, ctx) {
      // Four waiters start waiting 20 ms apart; each takes one packet and leaves. Packets come later, 30 ms
      // apart. LIFO: the last waiter gets the first packet, and so on back to the first waiter.
      const waiter = (i: number): WorkerProgram => ({
        steps: [{ op: 'sleep', us: (i + 1) * 20_000 }, { op: 'dequeue', timeoutMs: 5000 }, { op: 'spin', us: 100 }],
        repeat: 1,
      });
      const poster: WorkerProgram = {
        steps: [
          { op: 'sleep', us: 150_000 },
          { op: 'post', key: 0 },
          { op: 'sleep', us: 30_000 },
          { op: 'post', key: 1 },
          { op: 'sleep', us: 30_000 },
          { op: 'post', key: 2 },
          { op: 'sleep', us: 30_000 },
          { op: 'post', key: 3 },
        ],
        repeat: 1,
      };
      await withPort(t, 8, async (port) => {
        const trace = await runChecked(t, port, [waiter(0), waiter(1), waiter(2), waiter(3), poster], { deadlineMs: 30_000 }, ctx);
        const { byKey } = receivers(trace);
        const order = [0, 1, 2, 3].map((k) => byKey.get(k));
        ctx.log(`packets 0..3 went to threads ${order.join(', ')} (threads 0..3 started waiting in that order)`);
        assert.deepEqual(order, [3, 2, 1, 0], 'waiters must be released most recent first (LIFO)');
      });
    },
  },
  {
    id: 'CP-ORDER-003',
    async run(t, ctx) {
      const n = scaled(ctx, 100_000, 2_000);
      for (const max of [1, 32]) {
        await withPort(t, 1, async (port) => {
          const trace = await runChecked(t, port, [producer(0, n), busyConsumer(0, 300, max)], { deadlineMs: 60_000 }, ctx);
          assertSequence(keysOf(trace, 'got'), range(0, n), `producer thread to consumer thread (batch ${max})`);
        });
      }
    },
  },
  {
    id: 'CP-ORDER-004',
    async run(t, ctx) {
      const n = scaled(ctx, 30_000, 1_000);
      const bases = [0, 1_000_000, 2_000_000];
      await withPort(t, 1, async (port) => {
        const programs = [...bases.map((b) => producer(b, n)), busyConsumer(0, 300, 16)];
        const trace = await runChecked(t, port, programs, { deadlineMs: 60_000 }, ctx);
        const got = keysOf(trace, 'got');
        const problem = checkExactlyOnce(bases.flatMap((b) => range(b, n)), got);
        assert.equal(problem, undefined, `packets: ${problem}`);
        for (const b of bases) {
          assertSequence(got.filter((k) => k >= b && k < b + n), range(b, n), `producer with keys from ${b}`);
        }
      });
    },
  },
];

// PORT: creating, posting, dequeuing and closing a completion port.
import assert from 'node:assert/strict';
import { TargetError, type Packet } from '../../reference/src/target.ts';
import { checkExactlyOnce, keysOf } from '../../reference/src/trace.ts';
import type { SpecCase } from '../types.ts';
import { assertMaxRunning, assertPacket, busyConsumer, producer, range, runChecked, scaled, settledWithin, sleep, withPort } from './helpers.ts';

async function rejectsWith(p: Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TargetError, `${what}: expected a TargetError, got ${String(e)}`);
    assert.equal(e.code, code, `${what}: expected error code '${code}', got '${e.code}' (${e.message})`);
    return;
  }
  assert.fail(`${what}: expected a rejection with '${code}', but it succeeded`);
}

export const portCases: SpecCase[] = [
  {
    id: 'CP-PORT-001',
    async run(t) {
      await withPort(t, 1, async (port) => {
        const sent = [
          { key: 7, bytes: 42, token: 99 },
          { key: 0, bytes: 0, token: 0 },
          { key: 2 ** 53 - 1, bytes: 2 ** 32 - 1, token: 2 ** 53 - 1 },
        ];
        for (const p of sent) await t.post(port, p);
        for (const p of sent) {
          const got = assertPacket(await t.dequeue(port, 1000), `packet ${JSON.stringify(p)}`);
          assert.deepEqual(got, { ...p, status: 'ok', nativeError: 0 });
        }
      });
    },
  },
  {
    id: 'CP-PORT-002',
    async run(t) {
      await withPort(t, 1, async (port) => {
        await t.post(port, { key: 3, bytes: 17, token: 5, status: 'reset', nativeError: 104 });
        await t.post(port, { key: 4, bytes: 0, token: 6, status: 'aborted', nativeError: 995 });
        const a = assertPacket(await t.dequeue(port, 1000), 'failed-I/O packet');
        assert.deepEqual(a, { key: 3, bytes: 17, token: 5, status: 'reset', nativeError: 104 });
        const b = assertPacket(await t.dequeue(port, 1000), 'second failed-I/O packet');
        assert.deepEqual(b, { key: 4, bytes: 0, token: 6, status: 'aborted', nativeError: 995 });
      });
    },
  },
  {
    id: 'CP-PORT-003',
    async run(t) {
      await withPort(t, 1, async (port) => {
        const r = await settledWithin(t.dequeue(port, 0), 2000);
        assert.notEqual(r, 'pending', 'a dequeue with timeout 0 on an empty port did not return within 2 s');
        assert.deepEqual(r, { kind: 'timeout' });
        await t.post(port, { key: 1 });
        const r2 = await settledWithin(t.dequeue(port, 0), 2000);
        assert.notEqual(r2, 'pending', 'a dequeue with timeout 0 and a queued packet did not return within 2 s');
        assert.equal(assertPacket(r2 as never, 'poll with a queued packet').key, 1);
      });
    },
  },
  {
    id: 'CP-PORT-004',
    async run(t, ctx) {
      await withPort(t, 1, async (port) => {
        for (const ms of [20, 100]) {
          const start = performance.now();
          const r = await settledWithin(t.dequeue(port, ms), ms + 5000);
          const took = performance.now() - start;
          assert.notEqual(r, 'pending', `a ${ms} ms timeout had not returned after ${ms + 5000} ms`);
          assert.deepEqual(r, { kind: 'timeout' });
          // Timer granularity on the target side: allow 2 ms early for coarse clocks.
          assert.ok(took >= ms - 2, `a ${ms} ms timeout returned after ${took.toFixed(1)} ms`);
          ctx.log(`${ms} ms timeout returned after ${took.toFixed(1)} ms`);
        }
      });
    },
  },
  {
    id: 'CP-PORT-005',
    async run(t) {
      await withPort(t, 1, async (port) => {
        const waiting = t.dequeue(port, -1);
        assert.equal(await settledWithin(waiting, 300), 'pending', 'an infinite dequeue on an empty port returned');
        await t.post(port, { key: 11, bytes: 1, token: 12 });
        const r = await settledWithin(waiting, 5000);
        assert.notEqual(r, 'pending', 'a post did not wake the infinite dequeue within 5 s');
        assert.equal(assertPacket(r as never, 'woken dequeue').key, 11);
      });
    },
  },
  {
    id: 'CP-PORT-006',
    async run(t) {
      const port = await t.createPort(2);
      const waiters = [t.dequeue(port, -1), t.dequeue(port, -1), t.dequeue(port, 60_000), t.dequeue(port, -1)];
      await sleep(100);
      await t.closePort(port);
      const results = await settledWithin(Promise.all(waiters), 5000);
      assert.notEqual(results, 'pending', 'close did not wake every waiter within 5 s');
      assert.deepEqual(results, [{ kind: 'closed' }, { kind: 'closed' }, { kind: 'closed' }, { kind: 'closed' }]);
    },
  },
  {
    id: 'CP-PORT-007',
    async run(t) {
      const port = await t.createPort(1);
      await t.closePort(port);
      const r = await settledWithin(t.dequeue(port, -1), 2000);
      assert.notEqual(r, 'pending', 'a dequeue on a closed port blocked');
      assert.deepEqual(r, { kind: 'closed' });
      await rejectsWith(t.post(port, { key: 1 }), 'closed', 'post on a closed port');
    },
  },
  {
    id: 'CP-PORT-008',
    async run(t) {
      const port = await t.createPort(1);
      for (const k of [5, 6, 7]) await t.post(port, { key: k, bytes: k, token: k * 10 });
      const first = assertPacket(await t.dequeue(port, 1000), 'first packet');
      assert.equal(first.key, 5);
      const left: Packet[] = await t.closePort(port);
      assert.deepEqual(
        left.map((p) => p.key),
        [6, 7],
        'close must hand back the packets still queued, in FIFO order',
      );
      assert.deepEqual(left[0], { key: 6, bytes: 6, token: 60, status: 'ok', nativeError: 0 });
      assert.deepEqual(await t.closePort(port), [], 'a second close hands back nothing');
    },
  },
  {
    id: 'CP-PORT-009',
    async run(t) {
      await withPort(t, 1, async (port) => {
        for (let k = 0; k < 100; k++) await t.post(port, { key: k, status: k === 50 ? 'eof' : 'ok' });
        const got: Packet[] = [];
        const sizes: number[] = [];
        for (;;) {
          const r = await t.dequeueMany(port, 64, 0);
          if (r.kind === 'timeout') break;
          assert.equal(r.kind, 'packets', `unexpected batch result ${JSON.stringify(r)}`);
          if (r.kind !== 'packets') return;
          assert.ok(r.packets.length >= 1 && r.packets.length <= 64, `a batch of ${r.packets.length} packets (must be 1..64)`);
          sizes.push(r.packets.length);
          got.push(...r.packets);
          assert.ok(sizes.length <= 100, 'more batches than packets');
        }
        assert.deepEqual(got.map((p) => p.key), range(0, 100), 'batches must return every packet in FIFO order');
        assert.equal(got[50].status, 'eof', 'each entry keeps its own status');
        assert.equal(got[49].status, 'ok');
        assert.deepEqual(await t.dequeueMany(port, 8, 0), { kind: 'timeout' });
      });
    },
  },
  {
    id: 'CP-PORT-010',
    async run(t) {
      await rejectsWith(t.createPort(-1), 'invalid', 'concurrency -1');
      await rejectsWith(t.createPort(100_000), 'invalid', 'concurrency 100000');
      await rejectsWith(t.createPort(1.5), 'invalid', 'concurrency 1.5');
      await withPort(t, 1, async (port) => {
        await rejectsWith(t.dequeue(port, -2), 'invalid', 'timeout -2');
        await rejectsWith(t.dequeue(port, 2 ** 31), 'invalid', 'timeout 2^31');
        await rejectsWith(t.dequeue(port, 0.5), 'invalid', 'timeout 0.5');
        await rejectsWith(t.dequeueMany(port, 0, 0), 'invalid', 'batch maximum 0');
        await rejectsWith(t.dequeue(987654, 0), 'invalid', 'unknown port');
        await rejectsWith(t.post(987654, { key: 1 }), 'invalid', 'post to an unknown port');
        // The target still works after all that.
        await t.post(port, { key: 42 });
        assert.equal(assertPacket(await t.dequeue(port, 1000), 'after bad arguments').key, 42);
      });
    },
  },
  {
    id: 'CP-PORT-011',
    async run(t, ctx) {
      const perProducer = scaled(ctx, 100_000, 2_000);
      await withPort(t, 2, async (port) => {
        const programs = [
          producer(0, perProducer),
          producer(10_000_000, perProducer),
          busyConsumer(0, 300, 64),
          busyConsumer(0, 300, 64),
          busyConsumer(0, 300, 1),
          busyConsumer(0, 300, 16),
        ];
        const trace = await runChecked(t, port, programs, { deadlineMs: 60_000 }, ctx);
        const expected = [...range(0, perProducer), ...range(10_000_000, perProducer)];
        const problem = checkExactlyOnce(expected, keysOf(trace, 'got'));
        assert.equal(problem, undefined, `packets across threads: ${problem}`);
        assert.equal(trace.leftover, 0, `${trace.leftover} packets were left queued`);
      });
    },
  },
  {
    id: 'CP-PORT-012',
    async run(t, ctx) {
      const hw = ctx.info.hardwareThreads;
      assert.ok(Number.isInteger(hw) && hw >= 1, `info().hardwareThreads must be a positive integer, got ${hw}`);
      const workers = Math.min(64, hw + 4);
      await withPort(t, 0, async (port) => {
        const programs = [producer(0, scaled(ctx, 50 * workers, 10 * workers)), ...Array.from({ length: workers }, () => busyConsumer(200, 300))];
        const trace = await runChecked(t, port, programs, { deadlineMs: 60_000 }, ctx);
        const max = assertMaxRunning(trace, hw);
        ctx.log(`hardware threads ${hw}, ${workers} workers, at most ${max} ran at once`);
      });
    },
  },
];

// A fast-check property over pool-backed receives (CP-POOL-005, native/core/recv_pool.h): random
// sequences of peer writes, pool-backed receives and buffer releases, on the model and on both native
// back-ends. After every step: in use + available = total, in use = the buffers the test holds, an ok
// receive names a buffer the test did not already hold, pool-exhausted carries nothing; and the bytes
// received are exactly a prefix of the bytes written (none lost, none reordered, none duplicated).
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Packet, PortId, Target } from '../../reference/src/target.ts';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { createNativeTarget } from '../../native/js/target.ts';

type Step = { kind: 'write'; n: number } | { kind: 'recv'; length: number } | { kind: 'release'; pick: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), n: fc.integer({ min: 1, max: 300 }) }),
  fc.record({ kind: fc.constant('recv' as const), length: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat(7) }),
);

async function dequeueOp(t: Target, port: PortId, op: number, ms: number): Promise<Packet> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`op ${op}: no completion within ${ms} ms`);
    const r = await t.dequeue(port, left);
    if (r.kind === 'packet') {
      if (r.packet.op !== op) throw new Error(`unexpected packet for op ${r.packet.op} while waiting for ${op}`);
      return r.packet;
    }
    if (r.kind === 'closed') throw new Error('port closed');
  }
}

function suite(name: string, make: () => Promise<Target>, runs: number): void {
  describe(`pool-backed receives: property (${name})`, () => {
    let t: Target;
    beforeAll(async () => {
      t = await make();
    });
    afterAll(async () => {
      await t.dispose();
    });

    test(`random writes, receives and releases keep every byte and every buffer (${runs} runs)`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(stepArb, { minLength: 1, maxLength: 25 }), async (count, steps) => {
          const s = t.sockets!;
          const pools = t.pools!;
          const port = await t.createPort(0);
          const server = net.createServer({ allowHalfOpen: true });
          await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
          const peerP = new Promise<net.Socket>((r) => server.once('connection', r));
          const pool = await pools.createBufferPool({ bufferSize: 64, count });
          let socket = 0;
          try {
            const c = await s.connect(port, { key: 1, token: 0, host: '127.0.0.1', remotePort: (server.address() as net.AddressInfo).port });
            expect((await dequeueOp(t, port, c.op, 5000)).status).toBe('ok');
            socket = c.socket;
            const peer = await peerP;
            const written: number[] = [];
            const received: number[] = [];
            const held: number[] = [];
            let token = 1;
            for (const step of steps) {
              if (step.kind === 'write') {
                const bytes = Uint8Array.from({ length: step.n }, (_, i) => (written.length + i) % 251);
                written.push(...bytes);
                await new Promise<void>((r) => peer.write(bytes, () => r()));
              } else if (step.kind === 'release') {
                if (held.length === 0) continue;
                const [id] = held.splice(step.pick % held.length, 1);
                expect(await pools.releaseBuffer(pool, id)).toBe('ok');
                expect(await pools.releaseBuffer(pool, id)).toBe('double-release');
              } else if (received.length < written.length) {
                // Only with bytes outstanding: an idle receive would (rightly) stay pending.
                const op = await s.recv(socket, { length: step.length, token: token++, pool });
                let p = await dequeueOp(t, port, op, 5000);
                if (p.status === 'ok') {
                  expect(p.bytes).toBeGreaterThan(0);
                  expect(p.bytes).toBeLessThanOrEqual(Math.min(step.length, 64));
                  expect(p.buffer).toBeTypeOf('number');
                  expect(held).not.toContain(p.buffer);
                  held.push(p.buffer!);
                  received.push(...(p.data ?? []));
                } else {
                  expect(p.status).toBe('pool-exhausted');
                  expect(held.length).toBe(count);
                  expect(p.bytes).toBe(0);
                  expect(p.buffer).toBeUndefined();
                  p = undefined as unknown as Packet;
                }
              }
              const st = await pools.poolStats(pool);
              expect(st.inUse + st.available).toBe(st.total);
              expect(st.inUse).toBe(held.length);
              expect(received).toEqual(written.slice(0, received.length));
            }
            for (const id of held.splice(0)) expect(await pools.releaseBuffer(pool, id)).toBe('ok');
            expect((await pools.poolStats(pool)).inUse).toBe(0);
            peer.destroy();
          } finally {
            if (socket !== 0) await s.close(socket).catch(() => undefined);
            await t.closePort(port);
            await pools.destroyBufferPool(pool).catch(() => undefined);
            server.close();
          }
        }),
        { numRuns: runs },
      );
    }, 120_000);
  });
}

suite('model', async () => createModelTarget(), 25);
suite('native:epoll', async () => createNativeTarget({ backend: 'epoll' }), 25);
suite('native:uring', async () => createNativeTarget({ backend: 'uring' }), 25);

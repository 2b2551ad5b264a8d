// CANCEL: close and cancel with operations pending; every operation completes exactly once.
import assert from 'node:assert/strict';
import { type SocketApi, type SocketId } from '../../reference/src/target.ts';
import type { SpecCase } from '../types.ts';
import { scaled, settledWithin, sleep } from './helpers.ts';
import {
  HOST,
  assertBytes,
  assertStatus,
  closeQuietly,
  connectToPeer,
  describePacket,
  pattern,
  peerConnect,
  recvExactly,
  rejectsInvalid,
  socketsOf,
  stalledListener,
  withSocketPort,
} from './peer.ts';

const MiB = 1024 * 1024;

/** A send that cannot finish: a big buffer through a small send buffer to a peer that does not read. */
async function stuckSend(s: SocketApi, socket: SocketId, n: number, token: number): Promise<number> {
  await s.setBuffers(socket, { send: 4096 });
  return s.send(socket, pattern(n, token), { token });
}

export const cancelCases: SpecCase[] = [
  {
    id: 'CP-CANCEL-001',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket } = await connectToPeer(t, s, c, port, 31, cleanup);
        const op = await s.recv(socket, { length: 4096, token: 7 });
        await c.stillPending(op, 'recv before close', 100);
        await s.close(socket);
        const p = await c.wait(op, 'pending recv after close');
        assertStatus(p, 'aborted', 0, 'pending recv after close');
        assert.equal(p.token, 7, 'the aborted packet carries the operation\'s token');
        ctx.log(`recv aborted by close: ${describePacket(p)}`);
        await c.quiet('after the aborted recv (exactly once)', 300);
        await rejectsInvalid(s.recv(socket, { length: 1, token: 8 }), 'recv on the closed socket');
      });
    },
  },
  {
    id: 'CP-CANCEL-002',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 32, cleanup);
        peer.pause();
        const n = scaled(ctx, 16 * MiB, 8 * MiB);
        const op = await stuckSend(s, socket, n, 9);
        await c.stillPending(op, `a ${n}-byte send to a peer that does not read`, 300);
        await s.close(socket);
        const p = await c.wait(op, 'pending send after close');
        assertStatus(p, 'aborted', undefined, 'pending send after close');
        assert.ok(p.bytes <= n, `aborted send reports ${p.bytes} bytes of ${n}`);
        ctx.log(`send aborted by close: ${describePacket(p)}`);
        await c.quiet('after the aborted send (exactly once)', 300);
      });
    },
  },
  {
    id: 'CP-CANCEL-003',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c) => {
        const { socket: listener } = await s.listen(port, { key: 33, host: HOST });
        const ops = [await s.accept(listener, { token: 1, newKey: 331 }), await s.accept(listener, { token: 2, newKey: 332 })];
        await c.stillPending(ops[0], 'accept before the listener is closed', 100);
        await s.close(listener);
        for (const [i, op] of ops.entries()) {
          const p = await c.wait(op, `pending accept #${i + 1} after the listener was closed`);
          assertStatus(p, 'aborted', 0, `pending accept #${i + 1} after close`);
          assert.equal(p.key, 33, `an aborted accept carries the listener's key: ${describePacket(p)}`);
        }
        await c.quiet('after the aborted accepts (exactly once)', 300);
      });
    },
  },
  {
    id: 'CP-CANCEL-004',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 34, cleanup);
        const op = await s.recv(socket, { length: 4096, token: 1 });
        await c.stillPending(op, 'recv before cancel', 100);
        assert.equal(await s.cancel(socket, op), 'ok', 'cancel of a pending recv');
        const p = await c.wait(op, 'the cancelled recv');
        assertStatus(p, 'aborted', 0, 'the cancelled recv');
        // Data that arrives after the cancel goes to the next receive, whole.
        const later = pattern(3000, 4);
        await peer.write(later);
        await sleep(50);
        const got = await recvExactly(s, c, socket, later.length, 4096, 'recv after the cancel');
        assertBytes(got, later, 'bytes after the cancel');
        // Cancel all (op omitted) with a probe pending, then data still there for a recv.
        const probe = await s.recv(socket, { length: 0, token: 2 });
        await c.stillPending(probe, 'probe before cancel-all', 100);
        assert.equal(await s.cancel(socket), 'ok', 'cancel of everything pending');
        assertStatus(await c.wait(probe, 'the cancelled probe'), 'aborted', 0, 'the cancelled probe');
        await peer.write(pattern(10, 5));
        assertBytes(await recvExactly(s, c, socket, 10, 100, 'recv after cancel-all'), pattern(10, 5), 'bytes after cancel-all');
        await c.quiet('after the cancels');
      });
    },
  },
  {
    id: 'CP-CANCEL-005',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 35, cleanup);
        assert.equal(await s.cancel(socket), 'not-found', 'cancel on a socket with nothing pending');
        const op = await s.recv(socket, { length: 100, token: 1 });
        await peer.write(pattern(20, 6));
        const p = await c.wait(op, 'recv');
        assertStatus(p, 'ok', undefined, 'recv');
        assert.equal(await s.cancel(socket, op), 'not-found', 'cancel of a completed recv');
        const sent = await s.send(socket, pattern(100, 7), { token: 2 });
        assertStatus(await c.wait(sent, 'send'), 'ok', 100, 'send');
        assert.equal(await s.cancel(socket, sent), 'not-found', 'cancel of a completed send');
        assert.equal(await s.cancel(socket), 'not-found', 'cancel-all after everything completed');
        await c.quiet('cancelling finished operations must queue nothing', 300);
      });
    },
  },
  {
    id: 'CP-CANCEL-006',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const expect = new Map<number, string>();
        // 1. recv + probe + send pending; cancel the recv, then close: one completion each.
        {
          const { socket, peer } = await connectToPeer(t, s, c, port, 361, cleanup);
          peer.pause();
          const recv = await s.recv(socket, { length: 100, token: 1 });
          const probe = await s.recv(socket, { length: 0, token: 2 });
          const send = await stuckSend(s, socket, 8 * MiB, 3);
          await c.stillPending(send, 'mixed: send', 200);
          assert.equal(await s.cancel(socket, recv), 'ok', 'cancel of the pending recv');
          assert.equal(await s.cancel(socket, recv), 'not-found', 'second cancel of the same recv');
          await s.close(socket);
          for (const [op, what] of [[recv, 'cancelled recv'], [probe, 'probe aborted by close'], [send, 'send aborted by close']] as const) {
            const p = await c.wait(op, `mixed: ${what}`);
            assertStatus(p, 'aborted', undefined, `mixed: ${what}`);
            expect.set(op, what);
          }
        }
        // 2. recv pending, peer closes: eof; then cancel and close find nothing.
        {
          const { socket, peer } = await connectToPeer(t, s, c, port, 362, cleanup);
          const recv = await s.recv(socket, { length: 100, token: 4 });
          await peer.end();
          assertStatus(await c.wait(recv, 'eof: recv'), 'eof', 0, 'eof: recv');
          assert.equal(await s.cancel(socket, recv), 'not-found', 'cancel after eof');
          await s.close(socket);
        }
        // 3. recv and send pending, peer resets, then close.
        {
          const { socket, peer } = await connectToPeer(t, s, c, port, 363, cleanup);
          const recv = await s.recv(socket, { length: 100, token: 5 });
          peer.reset();
          const p = await c.wait(recv, 'reset: recv');
          assertStatus(p, 'reset', 0, 'reset: recv');
          const send = await s.send(socket, pattern(1000, 6), { token: 6 }).catch(() => undefined);
          if (send !== undefined) {
            const q = await c.wait(send, 'reset: send after the reset');
            assert.notEqual(q.status, 'ok', `send after reset: ${describePacket(q)}`);
          }
          await s.close(socket);
        }
        // 4. Cancel then close right away, a race on the same operations.
        {
          const { socket } = await connectToPeer(t, s, c, port, 364, cleanup);
          const ops = [];
          for (let i = 0; i < 10; i++) ops.push(await s.recv(socket, { length: 10, token: 100 + i }));
          const cancels = [s.cancel(socket, ops[3]), s.cancel(socket, ops[7]), s.close(socket), s.cancel(socket).catch(() => 'invalid')];
          await Promise.all(cancels);
          for (const op of ops) assertStatus(await c.wait(op, `race: recv op ${op}`), 'aborted', 0, `race: recv op ${op}`);
        }
        await c.quiet('after all scenarios (every operation exactly once)', 300);
        ctx.log(`${expect.size} aborted operations in the mixed scenario, each completed once`);
      });
    },
  },
  {
    id: 'CP-CANCEL-007',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        // A connected socket that did some I/O, idle when closed.
        const { socket, peer } = await connectToPeer(t, s, c, port, 37, cleanup);
        const sent = await s.send(socket, pattern(100, 1), { token: 1 });
        assertStatus(await c.wait(sent, 'send'), 'ok', 100, 'send');
        await peer.write(pattern(10, 2));
        const r = await s.recv(socket, { length: 100, token: 2 });
        assertStatus(await c.wait(r, 'recv'), 'ok', undefined, 'recv');
        await s.close(socket);
        // An idle listener, and an accepted socket closed abortively.
        const { socket: l, address } = await s.listen(port, { key: 371, host: HOST });
        const acc = await s.accept(l, { token: 3, newKey: 372 });
        const client = await peerConnect(address.port);
        cleanup.push(() => client.destroy());
        const pa = await c.wait(acc, 'accept');
        assertStatus(pa, 'ok', 0, 'accept');
        await s.close(l);
        await s.close(pa.socket!, { abortive: true });
        await c.quiet('closing idle sockets must queue nothing', 300);
      });
    },
  },
  {
    id: 'CP-CANCEL-008',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      const stalled = await stalledListener();
      try {
        await withSocketPort(t, async (port, c, cleanup) => {
          // Fill the never-accepting listener's queue so further SYNs are dropped.
          const net = await import('node:net');
          for (let i = 0; i < 8; i++) {
            const f = net.connect({ host: HOST, port: stalled.port });
            f.on('error', () => undefined);
            cleanup.push(() => f.destroy());
          }
          await sleep(200);
          const { socket, op } = await s.connect(port, { key: 38, token: 1, host: HOST, remotePort: stalled.port });
          cleanup.push(() => closeQuietly(s, socket));
          // Linux drops SYNs to a full accept queue, so the connect stays in flight; a stack that refuses
          // instead (Windows answers RST) cannot hold a connect in flight on loopback: nothing to cancel.
          const early = await settledWithin(c.wait(op, 'connect', 300).catch(() => undefined), 1000);
          if (early !== undefined && early !== 'pending' && early.status === 'refused') {
            ctx.unsupported(`a connect to a full accept queue was refused (${describePacket(early)}): no connect stays in flight here`);
          }
          if (early !== undefined && early !== 'pending') {
            assert.fail(`a connect to a listener whose accept queue is full completed before the cancel: ${describePacket(early)}`);
          }
          assert.equal(await s.cancel(socket, op), 'ok', 'cancel of the in-flight connect');
          const p = await c.wait(op, 'the cancelled connect');
          assertStatus(p, 'aborted', 0, 'the cancelled connect');
          assert.equal(await s.cancel(socket, op), 'not-found', 'a second cancel of the connect');
          await c.quiet('after the cancelled connect (exactly once)', 300);
        });
      } finally {
        await stalled.stop();
      }
    },
  },
];

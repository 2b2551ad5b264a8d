// EOF: graceful close, zero-length probes, resets and shutdown, with the peer driven by Node `net`.
import assert from 'node:assert/strict';
import { TargetError } from '../../reference/src/target.ts';
import type { SpecCase } from '../types.ts';
import { sleep } from './helpers.ts';
import {
  Completions,
  assertBytes,
  assertStatus,
  connectToPeer,
  dataOf,
  describePacket,
  pattern,
  recvExactly,
  recvUntilEof,
  socketsOf,
  withSocketPort,
} from './peer.ts';

/** Segmentations the peer writes before its FIN (sizes of consecutive writes). */
function segmentations(): { name: string; sizes: number[]; recvLen: (i: number) => number }[] {
  return [
    { name: '200 one-byte writes, recv 4096', sizes: Array(200).fill(1), recvLen: () => 4096 },
    { name: 'mixed sizes, recv 1', sizes: [1, 2, 3, 5, 8, 13, 21, 34], recvLen: () => 1 },
    { name: 'mixed sizes, recv 7', sizes: [1000, 1, 4095, 4097, 3, 17], recvLen: () => 7 },
    { name: 'one 300 KiB write, recv 65536', sizes: [300 * 1024], recvLen: () => 65536 },
    { name: 'uneven writes, varying recv lengths', sizes: [10, 9999, 1, 70000, 2, 3000], recvLen: (i) => [1, 100, 4096, 13, 65536][i % 5] },
    { name: 'nothing before the FIN', sizes: [], recvLen: () => 4096 },
  ];
}

export const eofCases: SpecCase[] = [
  {
    id: 'CP-EOF-001',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 11, cleanup);
        const data = pattern(50_000, 1);
        // A receive is already pending when the data and the FIN arrive.
        const first = await s.recv(socket, { length: 10, token: 1 });
        await peer.writeSegments([data.subarray(0, 10), data.subarray(10, 30_000), data.subarray(30_000)]);
        await peer.end();
        const p1 = await c.wait(first, 'first recv (pending before the data came)');
        assertStatus(p1, 'ok', undefined, 'first recv');
        assert.ok(p1.bytes > 0, `first recv: completed ok with 0 bytes although data was sent: ${describePacket(p1)}`);
        const rest = await recvUntilEof(s, c, socket, 8192, 'after the FIN');
        assertBytes(new Uint8Array([...dataOf(p1, 'first recv'), ...rest.data]), data, 'bytes received before eof');
        assert.equal(rest.eof.status, 'eof');
        assert.equal(rest.eof.bytes, 0, 'the eof completion carries 0 bytes');
        ctx.log(`50000 bytes in ${rest.recvs} receives, then eof/0`);
        await c.quiet('after eof');
      });
    },
  },
  {
    id: 'CP-EOF-002',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 12, cleanup);
        await peer.write(pattern(100, 2));
        await peer.end();
        const r = await recvUntilEof(s, c, socket, 4096, 'until eof');
        assert.equal(r.data.length, 100);
        for (let i = 0; i < 5; i++) {
          const op = await s.recv(socket, { length: 4096, token: 50 + i });
          const p = await c.wait(op, `recv #${i + 1} after eof`);
          assertStatus(p, 'eof', 0, `recv #${i + 1} after eof`);
          assert.equal(p.nativeError, 0, `recv #${i + 1} after eof: eof carries no native error, got ${describePacket(p)}`);
        }
        // Two pending at once after eof: both eof.
        const a = await s.recv(socket, { length: 1, token: 60 });
        const b = await s.recv(socket, { length: 1, token: 61 });
        assertStatus(await c.wait(a, 'first of two recvs after eof'), 'eof', 0, 'first of two recvs after eof');
        assertStatus(await c.wait(b, 'second of two recvs after eof'), 'eof', 0, 'second of two recvs after eof');
        await c.quiet('after repeated eof');
      });
    },
  },
  {
    id: 'CP-EOF-003',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 13, cleanup);
        // 1. No data: the probe pends.
        const probe = await s.recv(socket, { length: 0, token: 1 });
        await c.stillPending(probe, 'zero-length receive with no data', 300);
        // 2. Data arrives: the probe completes ok/0 and consumes nothing.
        await peer.write(new TextEncoder().encode('abc'));
        const p = await c.wait(probe, 'zero-length receive after data arrived');
        assertStatus(p, 'ok', 0, 'zero-length receive after data arrived');
        assert.equal(p.data?.length ?? 0, 0, 'the probe carries no data');
        const got = await recvExactly(s, c, socket, 3, 100, 'recv after the probe');
        assertBytes(got, new TextEncoder().encode('abc'), 'the bytes the probe left in the socket');
        // 3. Data already there: a probe completes at once (and a second one too: nothing was consumed).
        await peer.write(new TextEncoder().encode('xyz'));
        await sleep(100);
        for (const n of [1, 2]) {
          const start = Date.now();
          const op = await s.recv(socket, { length: 0, token: 10 + n });
          const q = await c.wait(op, `probe #${n} with data already there`, 2000);
          assertStatus(q, 'ok', 0, `probe #${n} with data already there`);
          ctx.log(`probe #${n} with data present completed after ${Date.now() - start} ms`);
        }
        const got2 = await recvExactly(s, c, socket, 3, 100, 'recv after two probes');
        assertBytes(got2, new TextEncoder().encode('xyz'), 'the bytes two probes left in the socket');
        await c.quiet('after the probes');
      });
    },
  },
  {
    id: 'CP-EOF-004',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        // Graceful close with a probe pending.
        const a = await connectToPeer(t, s, c, port, 14, cleanup);
        const probeA = await s.recv(a.socket, { length: 0, token: 1 });
        await c.stillPending(probeA, 'probe before the peer closes', 200);
        await a.peer.end();
        const pa = await c.wait(probeA, 'pending probe after the peer closed gracefully');
        assertStatus(pa, 'eof', 0, 'pending probe after the peer closed gracefully');
        // Reset with a probe pending.
        const b = await connectToPeer(t, s, c, port, 15, cleanup);
        const probeB = await s.recv(b.socket, { length: 0, token: 2 });
        await c.stillPending(probeB, 'probe before the peer resets', 200);
        b.peer.reset();
        const pb = await c.wait(probeB, 'pending probe after the peer reset');
        assertStatus(pb, 'reset', 0, 'pending probe after the peer reset');
        ctx.log(`probe on reset: nativeError ${pb.nativeError}`);
        await c.quiet('after the probes completed');
      });
    },
  },
  {
    id: 'CP-EOF-005',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 16, cleanup);
        const op = await s.recv(socket, { length: 4096, token: 1 });
        await c.stillPending(op, 'recv before the reset', 100);
        peer.reset();
        const p = await c.wait(op, 'pending recv after the peer reset');
        assertStatus(p, 'reset', 0, 'pending recv after the peer reset');
        ctx.log(`reset: nativeError ${p.nativeError}`);
        // The next receive and send fail at once: an error completion (or a synchronous rejection).
        for (const what of ['recv', 'send'] as const) {
          let next: number;
          try {
            next = what === 'recv' ? await s.recv(socket, { length: 4096, token: 2 }) : await s.send(socket, pattern(1000, 5), { token: 3 });
          } catch (e) {
            assert.ok(e instanceof TargetError, `${what} after reset rejected with ${String(e)}`);
            ctx.log(`${what} after reset rejected synchronously: ${e.code}`);
            continue;
          }
          const q = await c.wait(next, `${what} after the reset`, 2000);
          assert.ok(q.status !== 'ok' && q.status !== 'eof', `${what} after the reset must fail, got ${describePacket(q)}`);
          assert.equal(q.bytes, 0, `${what} after the reset: ${describePacket(q)}`);
          ctx.log(`${what} after reset: ${describePacket(q)}`);
        }
        await c.quiet('after the reset');
      });
    },
  },
  {
    id: 'CP-EOF-006',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        let seed = 100;
        for (const seg of segmentations()) {
          const { socket, peer } = await connectToPeer(t, s, c, port, seed, cleanup);
          const parts = seg.sizes.map((n) => pattern(n, seed++));
          const want = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
          let at = 0;
          for (const p of parts) {
            want.set(p, at);
            at += p.length;
          }
          // Write and FIN concurrently with the receives.
          const writer = peer.writeSegments(parts).then(() => peer.end());
          const got = await recvUntilEof(s, c, socket, seg.recvLen, seg.name);
          await writer;
          assertBytes(got.data, want, seg.name);
          ctx.log(`${seg.name}: ${want.length} bytes in ${got.recvs} receives`);
          await s.close(socket);
        }
        await c.quiet('after all segmentations');
      });
    },
  },
  {
    id: 'CP-EOF-007',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 17, cleanup);
        const before = pattern(5000, 7);
        const sent = await s.send(socket, before, { token: 1 });
        assertStatus(await c.wait(sent, 'send before the shutdown'), 'ok', before.length, 'send before the shutdown');
        await s.shutdown(socket, 'send');
        // The peer sees everything, then end of stream.
        await peer.until(() => peer.ended, 'end of stream after shutdown(send)');
        assertBytes(peer.data(), before, 'bytes the peer got before the FIN');
        await c.quiet('shutdown must queue no packet');
        const op = await s.send(socket, pattern(100, 8), { token: 2 });
        const p = await c.wait(op, 'send after shutdown(send)', 2000);
        assert.ok(p.status !== 'ok', `a send after shutdown(send) must fail, got ${describePacket(p)}`);
        assert.equal(p.bytes, 0, `send after shutdown: ${describePacket(p)}`);
        ctx.log(`send after shutdown: ${describePacket(p)}`);
        await sleep(50);
        assert.equal(peer.received, before.length, 'the peer received bytes after the FIN');
        await c.quiet('after the failed send');
      });
    },
  },
];

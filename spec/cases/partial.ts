// PARTIAL: the send contract (all or error by default, exact prefixes in the opt-in partial mode),
// back-pressure, ordering, injected short transfers, and sends to a reset peer.
import assert from 'node:assert/strict';
import { sendAll } from '../../reference/src/send-all.ts';
import { CAPABILITIES, TargetError, type Packet } from '../../reference/src/target.ts';
import type { SpecCase } from '../types.ts';
import { scaled, sleep } from './helpers.ts';
import {
  assertBytes,
  assertStatus,
  concat,
  connectToPeer,
  dataOf,
  describePacket,
  pattern,
  recvExactly,
  socketsOf,
  withSocketPort,
} from './peer.ts';

const KiB = 1024;
const MiB = 1024 * 1024;

function hasCap(caps: readonly string[], c: string): boolean {
  return caps.includes(c);
}

export const partialCases: SpecCase[] = [
  {
    id: 'CP-PARTIAL-001',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 21, cleanup);
        const sizes = [1, 1000, 64 * KiB + 1, scaled(ctx, 4 * MiB, 1 * MiB)];
        const want: Uint8Array[] = [];
        let i = 0;
        for (const n of sizes) {
          const data = pattern(n, 30 + i);
          want.push(data);
          // The peer stops reading for a while during the big send, so it meets back-pressure.
          if (n >= MiB) {
            peer.pause();
            setTimeout(() => peer.resume(), 300);
          }
          const op = await s.send(socket, data, { token: i });
          const p = await c.wait(op, `default-mode send of ${n} bytes`, 20_000);
          assertStatus(p, 'ok', n, `default-mode send of ${n} bytes (a short success is never reported)`);
          i++;
        }
        const total = sizes.reduce((a, b) => a + b, 0);
        await peer.until(() => peer.received >= total, `receiving ${total} bytes`, 20_000);
        assertBytes(peer.data(), concat(want), 'bytes the peer received');
        await c.quiet('after the sends');
      });
    },
  },
  {
    id: 'CP-PARTIAL-002',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      const partial = hasCap(ctx.info.capabilities, CAPABILITIES.partialSendMode);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 22, cleanup);
        if (partial) await s.setBuffers(socket, { send: 4096 });
        // Sends of varied sizes; in partial mode the rest of a short send is NOT resubmitted, so the stream
        // must be exactly the concatenation of the reported prefixes.
        const sizes = [10, 5000, 200 * KiB, 3, scaled(ctx, 2 * MiB, 512 * KiB), 77];
        const prefixes: Uint8Array[] = [];
        let shorts = 0;
        for (let i = 0; i < sizes.length; i++) {
          const data = pattern(sizes[i], 40 + i);
          if (i === 4) {
            peer.pause();
            setTimeout(() => peer.resume(), 200);
          }
          const op = await s.send(socket, data, { token: i, partial });
          const p = await c.wait(op, `send #${i + 1} of ${data.length} bytes${partial ? ' (partial mode)' : ''}`, 20_000);
          assertStatus(p, 'ok', undefined, `send #${i + 1}`);
          assert.ok(p.bytes <= data.length, `send #${i + 1} of ${data.length} bytes reported ${p.bytes} bytes`);
          if (!partial) assert.equal(p.bytes, data.length, `default-mode send #${i + 1}: ${describePacket(p)}`);
          else assert.ok(p.bytes > 0, `partial-mode send #${i + 1} completed ok with 0 bytes`);
          if (p.bytes < data.length) shorts++;
          prefixes.push(data.subarray(0, p.bytes));
        }
        const want = concat(prefixes);
        await s.shutdown(socket, 'send');
        await peer.until(() => peer.ended, 'end of stream', 20_000);
        assertBytes(peer.data(), want, 'the peer\'s bytes vs the reported prefixes');
        ctx.log(`${partial ? 'partial' : 'default'} mode: ${want.length} bytes reported and received, ${shorts} short completion(s)`);
        await c.quiet('after the sends');
      });
    },
  },
  {
    id: 'CP-PARTIAL-003',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 23, cleanup);
        await s.setBuffers(socket, { send: 4096 });
        const n = scaled(ctx, 8 * MiB, 1 * MiB);
        const data = pattern(n, 3);
        // Slow reader: stops for 20 ms after every 512 KiB it reads.
        let nextPause = 512 * KiB;
        let pauses = 0;
        peer.sock.on('data', () => {
          if (peer.received >= nextPause) {
            nextPause += 512 * KiB;
            pauses++;
            peer.pause();
            setTimeout(() => peer.resume(), 20);
          }
        });
        const start = Date.now();
        const op = await s.send(socket, data, { token: 1 });
        const p = await c.wait(op, `send of ${n} bytes through a 4096-byte send buffer`, 25_000);
        assertStatus(p, 'ok', n, `send of ${n} bytes`);
        await peer.until(() => peer.received >= n, `receiving ${n} bytes`, 20_000);
        assertBytes(peer.data(), data, `${n} bytes through a small send buffer`);
        ctx.log(`${n} bytes in ${Date.now() - start} ms, reader paused ${pauses} times`);
        await c.quiet('after the large send');
      });
    },
  },
  {
    id: 'CP-PARTIAL-004',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 24, cleanup);
        const count = scaled(ctx, 40, 10);
        const parts: Uint8Array[] = [];
        const ops: number[] = [];
        peer.pause(); // everything is outstanding at once
        for (let i = 0; i < count; i++) {
          const size = i % 7 === 3 ? 300 * KiB : i % 3 === 0 ? 1 : 1000 + i * 37;
          const d = pattern(size, 500 + i);
          parts.push(d);
          ops.push(await s.send(socket, d, { token: i }));
        }
        peer.resume();
        for (let i = 0; i < count; i++) {
          const p = await c.wait(ops[i], `send #${i + 1} of ${count}`, 20_000);
          assertStatus(p, 'ok', parts[i].length, `send #${i + 1}`);
        }
        const want = concat(parts);
        await peer.until(() => peer.received >= want.length, `receiving ${want.length} bytes`, 20_000);
        assertBytes(peer.data(), want, `${count} outstanding sends, in issue order`);
        await c.quiet('after the sends');
      });
    },
  },
  {
    id: 'CP-PARTIAL-005',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 25, cleanup);
        await s.setBuffers(socket, { send: 4096 });
        // The peer does not read: the kernel cannot take 4 MiB, so a partial-mode send must come back short.
        peer.pause();
        const n = 4 * MiB;
        const data = pattern(n, 9);
        const op = await s.send(socket, data, { token: 1, partial: true });
        const first = await c.wait(op, `partial-mode send of ${n} bytes to a peer that does not read`, 10_000);
        assertStatus(first, 'ok', undefined, 'first partial-mode send');
        assert.ok(first.bytes > 0 && first.bytes < n, `the first partial-mode send must be short (0 < bytes < ${n}), got ${describePacket(first)}`);
        ctx.log(`first partial send: ${first.bytes} of ${n} bytes`);
        peer.resume();
        // The send-all helper completes the rest, in order.
        const completions: Packet[] = [];
        const r = await sendAll(s, socket, data.subarray(first.bytes), {
          token: 2,
          wait: (o) => c.wait(o, 'send-all step', 10_000),
          onCompletion: (p, offset) => {
            completions.push(p);
            assert.ok(p.bytes <= n - first.bytes - offset, `a send-all step reported ${p.bytes} bytes, more than the ${n - first.bytes - offset} submitted`);
          },
        });
        assert.equal(first.bytes + r.bytes, n, 'bytes reported in total');
        ctx.log(`send-all: ${r.sends} sends, ${r.shorts} short`);
        await peer.until(() => peer.received >= n, `receiving ${n} bytes`, 20_000);
        await sleep(50);
        assertBytes(peer.data(), data, 'the short prefix followed by the send-all rest');
        await c.quiet('after send-all');
      });
    },
  },
  {
    id: 'CP-PARTIAL-006',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 26, cleanup);
        const cap = 7;
        await s.setFaults(socket, { maxBytesPerCall: cap });
        // Default-mode send: completes fully despite 7-byte system calls.
        const n = scaled(ctx, 64 * KiB, 8 * KiB);
        const data = pattern(n, 11);
        const op = await s.send(socket, data, { token: 1 });
        assertStatus(await c.wait(op, `default-mode send of ${n} bytes with ${cap}-byte calls`, 20_000), 'ok', n, `send of ${n} bytes with ${cap}-byte calls`);
        await peer.until(() => peer.received >= n, `receiving ${n} bytes`, 20_000);
        assertBytes(peer.data(), data, 'bytes sent through capped calls');
        // Receives: every byte arrives, at most `cap` per completion.
        const m = scaled(ctx, 4 * KiB, 1 * KiB);
        const back = pattern(m, 12);
        await peer.write(back);
        const parts: Uint8Array[] = [];
        let got = 0;
        let recvs = 0;
        while (got < m) {
          const r = await s.recv(socket, { length: 4096, token: 100 + recvs });
          const p = await c.wait(r, `recv #${recvs + 1} with ${cap}-byte calls (${got} of ${m} bytes so far)`);
          recvs++;
          assertStatus(p, 'ok', undefined, `recv #${recvs}`);
          assert.ok(p.bytes > 0 && p.bytes <= cap, `recv #${recvs}: ${p.bytes} bytes with a cap of ${cap} per call`);
          parts.push(dataOf(p, `recv #${recvs}`));
          got += p.bytes;
        }
        assertBytes(concat(parts), back, 'bytes received through capped calls');
        ctx.log(`send of ${n} bytes and ${recvs} receives of at most ${cap} bytes`);
        await c.quiet('after the capped transfers');
      });
    },
  },
  {
    id: 'CP-PARTIAL-007',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 27, cleanup);
        // Data first, then a large receive.
        await peer.write(pattern(10, 13));
        await sleep(50);
        const a = await s.recv(socket, { length: 1 * MiB, token: 1 });
        const pa = await c.wait(a, 'a 1 MiB receive with 10 bytes available', 2000);
        assertStatus(pa, 'ok', undefined, 'a 1 MiB receive with 10 bytes available');
        assert.ok(pa.bytes >= 1 && pa.bytes <= 10, `got ${pa.bytes} bytes`);
        const restA = pa.bytes < 10 ? await recvExactly(s, c, socket, 10 - pa.bytes, 1 * MiB, 'the rest of the 10 bytes') : new Uint8Array(0);
        assertBytes(concat([dataOf(pa, 'recv'), restA]), pattern(10, 13), 'the 10 bytes');
        // A large receive first, then 5 bytes.
        const b = await s.recv(socket, { length: 1 * MiB, token: 2 });
        await c.stillPending(b, 'a receive with nothing available', 100);
        await peer.write(pattern(5, 14));
        const pb = await c.wait(b, 'a pending 1 MiB receive after 5 bytes arrived', 2000);
        assertStatus(pb, 'ok', undefined, 'a pending 1 MiB receive after 5 bytes arrived');
        assert.ok(pb.bytes >= 1 && pb.bytes <= 5, `got ${pb.bytes} bytes`);
        await c.quiet('after the receives');
      });
    },
  },
  {
    id: 'CP-PARTIAL-008',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket, peer } = await connectToPeer(t, s, c, port, 28, cleanup);
        peer.reset();
        await sleep(100); // let the RST arrive
        let failed: Packet | undefined;
        for (let i = 0; i < 20 && failed === undefined; i++) {
          let op: number;
          try {
            op = await s.send(socket, pattern(64 * KiB, 15 + i), { token: i });
          } catch (e) {
            assert.ok(e instanceof TargetError, `send #${i + 1} to a reset peer threw ${String(e)}`);
            assert.fail(`send #${i + 1} to a reset peer was rejected synchronously (${e.code}: ${e.message}); it must complete with an error status`);
          }
          const p = await c.wait(op, `send #${i + 1} to a reset peer`, 5000);
          if (p.status !== 'ok') failed = p;
          else await sleep(20);
        }
        assert.ok(failed !== undefined, 'twenty 64 KiB sends to a reset peer all succeeded');
        assert.notEqual(failed.status, 'eof', `a send to a reset peer failed with eof: ${describePacket(failed)}`);
        ctx.log(`send to the reset peer: ${describePacket(failed)}; the process is still alive (no SIGPIPE)`);
        // The process (and an in-process target) survived; the socket still answers.
        const r = await s.recv(socket, { length: 100, token: 99 });
        const pr = await c.wait(r, 'recv after the failed send', 2000);
        assert.ok(pr.status !== 'ok', `recv after a reset must fail, got ${describePacket(pr)}`);
        await c.quiet('after the failed send');
      });
    },
  },
];

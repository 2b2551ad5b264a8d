// POOL with sockets: pool-backed receives (CP-POOL-005), buffers coming back after churn (006), the
// session limit (007) and completion bursts (008). The contract of a pool-backed receive is in
// native/core/recv_pool.h and on SocketApi.recv in reference/src/target.ts.
import assert from 'node:assert/strict';
import { type Packet, type PoolId, type PoolTarget, type SocketApi, type SocketId, type Target } from '../../reference/src/target.ts';
import type { CaseContext, SpecCase } from '../types.ts';
import { scaled, sleep } from './helpers.ts';
import {
  HOST,
  Completions,
  type Peer,
  assertBytes,
  assertStatus,
  concat,
  connectToPeer,
  dataOf,
  describePacket,
  pattern,
  peerConnect,
  rejectsInvalid,
  socketsOf,
  withSocketPort,
} from './peer.ts';

function poolsOf(t: Target, ctx: CaseContext): PoolTarget {
  if (!t.pools) ctx.unsupported('the target has no pools member');
  return t.pools;
}

/** A pool-backed receive that must complete ok: checks buffer and data, returns both. */
function okPooled(p: Packet, max: number, what: string): { buffer: number; data: Uint8Array } {
  assertStatus(p, 'ok', undefined, what);
  assert.ok(p.bytes > 0 && p.bytes <= max, `${what}: ${p.bytes} bytes (1..${max} expected): ${describePacket(p)}`);
  assert.equal(typeof p.buffer, 'number', `${what}: an ok pool-backed receive names its buffer: ${describePacket(p)}`);
  return { buffer: p.buffer!, data: dataOf(p, what) };
}

function assertExhausted(p: Packet, what: string): void {
  assertStatus(p, 'pool-exhausted', 0, what);
  assert.equal(p.buffer, undefined, `${what}: a pool-exhausted receive carries no buffer: ${describePacket(p)}`);
  assert.equal(p.data?.length ?? 0, 0, `${what}: a pool-exhausted receive carries no data`);
}

/** Accepts one connection on listener (a pending accept), returns the new socket. */
async function acceptOne(s: SocketApi, c: Completions, listener: SocketId, token: number, newKey: number, what: string): Promise<SocketId> {
  const op = await s.accept(listener, { token, newKey });
  const p = await c.wait(op, what);
  assertStatus(p, 'ok', undefined, what);
  assert.ok(typeof p.socket === 'number', `${what}: no socket in ${describePacket(p)}`);
  return p.socket!;
}

export const poolSocketCases: SpecCase[] = [
  {
    id: 'CP-POOL-005',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      const pools = poolsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        // Part 1: two buffers of 64 bytes; the receives drain the pool themselves.
        const pool: PoolId = await pools.createBufferPool({ bufferSize: 64, count: 2 });
        cleanup.push(() => pools.destroyBufferPool(pool));
        const size = 64;
        const { socket, peer } = await connectToPeer(t, s, c, port, 51, cleanup);
        const first = await s.recv(socket, { length: 4096, token: 1, pool });
        await c.stillPending(first, 'a pool-backed receive with nothing to read', 100);
        let st = await pools.poolStats(pool);
        assert.equal(st.inUse, 0, `a pending receive on an idle connection holds no buffer (in use ${st.inUse})`);
        await rejectsInvalid(pools.acquireBuffer(pool), 'acquireBuffer on a pool bound to receives');
        const sent = pattern(300, 5);
        await peer.write(sent);
        const got: Uint8Array[] = [];
        const held: number[] = [];
        const r1 = okPooled(await c.wait(first, 'pooled recv #1'), size, 'pooled recv #1');
        got.push(r1.data);
        held.push(r1.buffer);
        const r2 = okPooled(await c.wait(await s.recv(socket, { length: 4096, token: 2, pool }), 'pooled recv #2'), size, 'pooled recv #2');
        assert.notEqual(r2.buffer, r1.buffer, 'two held buffers are distinct');
        got.push(r2.data);
        held.push(r2.buffer);
        // The pool is empty and data is waiting: pool-exhausted, nothing read, nothing torn down.
        const ex = await c.wait(await s.recv(socket, { length: 4096, token: 3, pool }), 'pooled recv on an empty pool');
        assertExhausted(ex, 'pooled recv on an empty pool');
        ctx.log(`empty pool: ${describePacket(ex)}`);
        st = await pools.poolStats(pool);
        assert.equal(st.inUse, 2, `in use ${st.inUse} while the application holds 2`);
        assert.equal(st.inUse + st.available, st.total, 'conservation');
        assert.ok(st.failedAcquires >= 1, `the exhausted receive counts as a failed acquire (${st.failedAcquires})`);
        // Release and re-arm until every byte came, releasing as we go; then the end of stream.
        assert.equal(await pools.releaseBuffer(pool, held[0]), 'ok');
        assert.equal(await pools.releaseBuffer(pool, held[0]), 'double-release', 'a released receive buffer cannot be released again');
        held.shift();
        let total = r1.data.length + r2.data.length;
        for (let i = 0; total < sent.length; i++) {
          const p = await c.wait(await s.recv(socket, { length: 4096, token: 10 + i, pool }), `pooled recv after a release #${i + 1}`);
          const r = okPooled(p, size, `pooled recv after a release #${i + 1}`);
          got.push(r.data);
          total += r.data.length;
          assert.equal(await pools.releaseBuffer(pool, held.shift()!), 'ok');
          held.push(r.buffer);
        }
        assertBytes(concat(got), sent, 'bytes through pool-backed receives around an exhaustion');
        // One buffer held; the last bytes take the other, then the peer closes: with the pool empty the
        // receive at end of stream is pool-exhausted, never eof.
        assert.equal(held.length, 1, 'one buffer held after the loop');
        const extra = pattern(10, 6);
        await peer.write(extra);
        const rx = okPooled(await c.wait(await s.recv(socket, { length: 4096, token: 40, pool }), 'pooled recv of the last bytes'), size, 'pooled recv of the last bytes');
        held.push(rx.buffer);
        assertBytes(rx.data, extra, 'the last bytes');
        await peer.end();
        await sleep(50);
        const exEnd = await c.wait(await s.recv(socket, { length: 4096, token: 41, pool }), 'pooled recv at end of stream with an empty pool');
        assertExhausted(exEnd, 'pooled recv at end of stream with an empty pool (must not be eof)');
        for (const b of held.splice(0)) assert.equal(await pools.releaseBuffer(pool, b), 'ok');
        const eof = await c.wait(await s.recv(socket, { length: 4096, token: 42, pool }), 'pooled recv at end of stream');
        assertStatus(eof, 'eof', 0, 'pooled recv at end of stream after buffers returned');
        st = await pools.poolStats(pool);
        assert.equal(st.inUse, 0, `every buffer returned (in use ${st.inUse})`);

        // Part 2: one buffer, two idle connections. The buffer goes to whichever has data first; the other
        // finds the pool empty when its data arrives.
        const one = await pools.createBufferPool({ bufferSize: 128, count: 1 });
        cleanup.push(() => pools.destroyBufferPool(one));
        const a = await connectToPeer(t, s, c, port, 52, cleanup);
        const b = await connectToPeer(t, s, c, port, 53, cleanup);
        const ra = await s.recv(a.socket, { length: 128, token: 50, pool: one });
        const rb = await s.recv(b.socket, { length: 128, token: 51, pool: one });
        await c.stillPending(ra, 'pooled recv on idle connection A', 100);
        await c.stillPending(rb, 'pooled recv on idle connection B', 50);
        await a.peer.write(pattern(20, 7));
        const pa = okPooled(await c.wait(ra, 'pooled recv on A'), 128, 'pooled recv on A');
        assertBytes(pa.data, pattern(20, 7), 'bytes on A');
        await b.peer.write(pattern(30, 8));
        assertExhausted(await c.wait(rb, 'pooled recv on B while A holds the only buffer'), 'pooled recv on B while A holds the only buffer');
        assert.equal(await pools.releaseBuffer(one, pa.buffer), 'ok');
        const pb = okPooled(await c.wait(await s.recv(b.socket, { length: 128, token: 52, pool: one }), 'pooled recv on B again'), 128, 'pooled recv on B again');
        assertBytes(pb.data, pattern(30, 8), 'bytes on B after the exhaustion: none lost');
        assert.equal(await pools.releaseBuffer(one, pb.buffer), 'ok');
        await c.quiet('after the pool-backed receives');
      });
    },
  },
  {
    id: 'CP-POOL-006',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      const pools = poolsOf(t, ctx);
      const total = scaled(ctx, 10_000, 500);
      const lanes = 16;
      await withSocketPort(t, async (_port, c, cleanup) => {
        const pool = await pools.createBufferPool({ bufferSize: 256, count: lanes * 2 });
        cleanup.push(() => pools.destroyBufferPool(pool));
        let seq = 0;
        const counts = { graceful: 0, reset: 0, cancel: 0, close: 0, abortive: 0 };
        // One lane: connect, exchange, end the connection in one of five ways, with pool-backed receives.
        // Each lane has its own port and listener, so its completions never wait behind another lane's.
        const lane = async (laneNo: number, n: number) => {
          const port = await t.createPort(0);
          cleanup.push(() => t.closePort(port));
          const c = new Completions(t, port);
          const { socket: listener, address } = await s.listen(port, { key: 60, host: HOST, backlog: 64 });
          cleanup.push(() => s.close(listener).catch(() => undefined));
          for (let i = 0; i < n; i++) {
            const k = seq++;
            const peer: Peer = await peerConnect(address.port);
            let sock: SocketId | undefined;
            try {
              sock = await acceptOne(s, c, listener, 100_000 + k, 600 + laneNo, `churn ${k}: accept`);
              const data = pattern(40 + (k % 200), k);
              await peer.write(data);
              let got = 0;
              while (got < data.length) {
                const p = await c.wait(await s.recv(sock, { length: 256, token: k, pool }), `churn ${k}: recv`);
                if (p.status === 'pool-exhausted') {
                  await sleep(1);
                  continue;
                }
                const r = okPooled(p, 256, `churn ${k}: recv`);
                got += r.data.length;
                assert.equal(await pools.releaseBuffer(pool, r.buffer), 'ok', `churn ${k}: release`);
              }
              const way = k % 5;
              const op = await s.recv(sock, { length: 256, token: k, pool });
              if (way === 0) {
                counts.graceful++;
                await peer.end();
              } else if (way === 1) {
                counts.reset++;
                peer.reset();
              } else if (way === 2) {
                counts.cancel++;
                await s.cancel(sock, op);
              } else if (way === 3) {
                counts.close++;
                await s.close(sock);
                sock = undefined;
              } else {
                counts.abortive++;
                await s.close(sock, { abortive: true });
                sock = undefined;
              }
              const p = await c.wait(op, `churn ${k}: the last receive`);
              if (p.buffer !== undefined) assert.equal(await pools.releaseBuffer(pool, p.buffer), 'ok', `churn ${k}: release of the last buffer`);
              assert.ok(['eof', 'reset', 'aborted', 'pool-exhausted'].includes(p.status), `churn ${k}: last receive ${describePacket(p)}`);
            } finally {
              if (sock !== undefined) await s.close(sock).catch(() => undefined);
              peer.destroy();
            }
          }
        };
        const per = Math.ceil(total / lanes);
        await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i, Math.min(per, Math.max(0, total - i * per)))));
        const st = await pools.poolStats(pool);
        ctx.log(`churned ${seq} connections (${JSON.stringify(counts)}); pool ${JSON.stringify(st)}`);
        assert.equal(st.inUse, 0, `after ${seq} connections churned, ${st.inUse} buffers are still in use`);
        assert.equal(st.available, st.total, 'every buffer is available again');
        await c.quiet('after the churn');
      });
    },
  },
  {
    id: 'CP-POOL-007',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      if (!s.limitSessions || !s.sessionStats) ctx.unsupported('the target has no session limits (SocketApi.limitSessions)');
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket: listener, address } = await s.listen(port, { key: 70, host: HOST });
        cleanup.push(() => s.close(listener).catch(() => undefined));
        const full = new TextEncoder().encode('SERVER FULL');
        await s.limitSessions!(listener, { max: 2, fullMessage: full });
        const peers: Peer[] = [];
        const connect = async () => {
          const p = await peerConnect(address.port);
          peers.push(p);
          cleanup.push(() => p.destroy());
          return p;
        };
        const a = await connect();
        const sa = await acceptOne(s, c, listener, 1, 701, 'accept session A');
        const b = await connect();
        const sb = await acceptOne(s, c, listener, 2, 702, 'accept session B');
        cleanup.push(() => s.close(sa).catch(() => undefined), () => s.close(sb).catch(() => undefined));
        let st = await s.sessionStats!(listener);
        assert.deepEqual(st, { max: 2, active: 2, refused: 0 }, 'two sessions');
        // The third connection, with an accept pending: refused the documented way.
        const pending = await s.accept(listener, { token: 3, newKey: 703 });
        const x = await connect();
        await x.until(() => x.ended, 'the refused connection sees the server-full message and end of stream');
        assertBytes(x.data(), full, 'what the refused peer received');
        await c.stillPending(pending, 'the accept while the session pool is full', 100);
        st = await s.sessionStats!(listener);
        assert.deepEqual(st, { max: 2, active: 2, refused: 1 }, 'one refusal');
        // Existing sessions are unaffected.
        const msg = pattern(500, 9);
        await a.write(msg);
        const r = await c.wait(await s.recv(sa, { length: 4096, token: 10 }), 'recv on session A');
        assertStatus(r, 'ok', undefined, 'recv on session A');
        const w = await c.wait(await s.send(sb, msg, { token: 11 }), 'send on session B');
        assertStatus(w, 'ok', msg.length, 'send on session B');
        await b.until(() => b.received >= msg.length, 'session B gets its bytes');
        // Capacity returns when a session ends.
        await s.close(sa);
        st = await s.sessionStats!(listener);
        assert.equal(st.active, 1, `after closing session A, active = ${st.active}`);
        const d = await connect();
        const pd = await c.wait(pending, 'the pending accept once a session ended');
        assertStatus(pd, 'ok', undefined, 'accept after capacity returned');
        cleanup.push(() => s.close(pd.socket!).catch(() => undefined));
        await d.write(pattern(10, 3));
        const rd = await c.wait(await s.recv(pd.socket!, { length: 64, token: 12 }), 'recv on session D');
        assertStatus(rd, 'ok', undefined, 'recv on session D');
        st = await s.sessionStats!(listener);
        assert.deepEqual(st, { max: 2, active: 2, refused: 1 }, 'two sessions again');
        ctx.log(`sessions: ${JSON.stringify(st)}`);
        await c.quiet('after the session pool');
      });
    },
  },
  {
    id: 'CP-POOL-008',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      const n = scaled(ctx, 512, 64);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket: listener, address } = await s.listen(port, { key: 80, host: HOST, backlog: 1024 });
        cleanup.push(() => s.close(listener).catch(() => undefined));
        const peers: Peer[] = [];
        const socks: SocketId[] = [];
        for (let i = 0; i < n; i++) {
          const p = await peerConnect(address.port);
          peers.push(p);
          cleanup.push(() => p.destroy());
          const sock = await acceptOne(s, c, listener, i, 800, `accept ${i}`);
          socks.push(sock);
          cleanup.push(() => s.close(sock).catch(() => undefined));
        }
        // A receive pending on every connection, then every peer writes at once and nobody dequeues
        // for a while: the completions pile up (far beyond a small completion queue) before any is taken.
        const ops: number[] = [];
        for (let i = 0; i < n; i++) ops.push(await s.recv(socks[i], { length: 64, token: 10_000 + i }));
        await Promise.all(peers.map((p, i) => p.write(pattern(16, i))));
        await sleep(300);
        const seen = new Set<number>();
        for (let i = 0; i < n; i++) {
          const p = await c.waitAny(ops.filter((o) => !seen.has(o)), `completion ${i + 1} of ${n}`);
          seen.add(p.op!);
          const k = p.token - 10_000;
          assertStatus(p, 'ok', undefined, `receive ${k}`);
          const d = dataOf(p, `receive ${k}`);
          assertBytes(d, pattern(16, k).subarray(0, d.length), `receive ${k}`);
        }
        assert.equal(seen.size, n, `${n} completions, each once`);
        await c.quiet('after the burst');
        ctx.log(`${n} receives completed at once; none lost`);
      });
    },
  },
];

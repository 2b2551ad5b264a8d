// ACCEPT: accept and connect completions through the port.
import assert from 'node:assert/strict';
import type { SpecCase } from '../types.ts';
import { scaled } from './helpers.ts';
import {
  HOST,
  PeerServer,
  type Peer,
  assertBytes,
  assertStatus,
  closedPort,
  describePacket,
  pattern,
  peerConnect,
  recvExactly,
  socketsOf,
  withSocketPort,
} from './peer.ts';

export const acceptCases: SpecCase[] = [
  {
    id: 'CP-ACCEPT-001',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const { socket: listener, address } = await s.listen(port, { key: 41, host: HOST });
        cleanup.push(() => s.close(listener).catch(() => undefined));
        assert.ok(address.port > 0, `listen reported port ${address.port}`);
        const op = await s.accept(listener, { token: 5, newKey: 410 });
        await c.stillPending(op, 'accept with no client', 100);
        const peer = await peerConnect(address.port);
        cleanup.push(() => peer.destroy());
        const p = await c.wait(op, 'accept after a client connected');
        assertStatus(p, 'ok', 0, 'accept');
        assert.equal(p.key, 41, `the accept completion carries the listener's key: ${describePacket(p)}`);
        assert.equal(p.token, 5, 'the accept completion carries its token');
        assert.ok(typeof p.socket === 'number' && p.socket > 0, `the accept completion names the new socket: ${describePacket(p)}`);
        assert.notEqual(p.socket, listener, 'the new socket is not the listener');
        const conn = p.socket!;
        cleanup.push(() => s.close(conn).catch(() => undefined));
        // The new socket is usable, and its completions carry its own key.
        const hello = pattern(1000, 1);
        await peer.write(hello);
        const r = await s.recv(conn, { length: 4096, token: 6 });
        const pr = await c.wait(r, 'recv on the accepted socket');
        assert.equal(pr.key, 410, `completions of the accepted socket carry newKey: ${describePacket(pr)}`);
        assertStatus(pr, 'ok', undefined, 'recv on the accepted socket');
        const got = new Uint8Array([...(pr.data ?? []), ...(pr.bytes < 1000 ? await recvExactly(s, c, conn, 1000 - pr.bytes, 4096, 'rest') : [])]);
        assertBytes(got, hello, 'bytes on the accepted socket');
        const back = pattern(2000, 2);
        const w = await s.send(conn, back, { token: 7 });
        const pw = await c.wait(w, 'send on the accepted socket');
        assertStatus(pw, 'ok', back.length, 'send on the accepted socket');
        assert.equal(pw.key, 410);
        await peer.until(() => peer.received >= back.length, 'the reply');
        assertBytes(peer.data(), back, 'bytes the client got');
        await c.quiet('after the accept');
      });
    },
  },
  {
    id: 'CP-ACCEPT-002',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const n = scaled(ctx, 20, 5);
        const extra = 2;
        const { socket: listener, address } = await s.listen(port, { key: 42, host: HOST, backlog: 128 });
        const ops: number[] = [];
        for (let i = 0; i < n + extra; i++) ops.push(await s.accept(listener, { token: i, newKey: 4200 + i }));
        const peers: Peer[] = await Promise.all(Array.from({ length: n }, () => peerConnect(address.port)));
        cleanup.push(() => peers.forEach((p) => p.destroy()));
        const sockets = new Set<number>();
        const done = new Set<number>();
        for (let i = 0; i < n; i++) {
          const p = await c.waitAny(ops.filter((o) => !done.has(o)), `accept completion ${i + 1} of ${n}`);
          done.add(p.op!);
          assertStatus(p, 'ok', 0, `accept completion ${i + 1}`);
          assert.equal(p.key, 42);
          assert.ok(p.socket !== undefined && !sockets.has(p.socket), `accept completion ${i + 1}: new socket ${String(p.socket)} is missing or repeated`);
          sockets.add(p.socket);
          cleanup.push(() => s.close(p.socket!).catch(() => undefined));
        }
        // The surplus accepts stay pending: no connection, no completion.
        const surplus = ops.filter((o) => !done.has(o));
        for (const o of surplus) await c.stillPending(o, `a surplus accept with only ${n} connections`, 150);
        await c.quiet(`exactly ${n} accept completions for ${n} connections`, 100);
        await s.close(listener);
        for (const o of surplus) assertStatus(await c.wait(o, 'surplus accept after the listener was closed'), 'aborted', 0, 'surplus accept after close');
        await c.quiet('after closing the listener');
        ctx.log(`${n} connections, ${n} accept completions, ${extra} surplus accepts aborted`);
      });
    },
  },
  {
    id: 'CP-ACCEPT-003',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const server = await PeerServer.listen();
        cleanup.push(() => server.close());
        const { socket, op } = await s.connect(port, { key: 43, token: 9, host: HOST, remotePort: server.port });
        cleanup.push(() => s.close(socket).catch(() => undefined));
        const p = await c.wait(op, 'connect');
        assertStatus(p, 'ok', 0, 'connect');
        assert.equal(p.key, 43, `the connect completion carries the socket's key: ${describePacket(p)}`);
        assert.equal(p.token, 9);
        const peer = await server.next();
        // Connected and usable.
        const ping = pattern(500, 3);
        const w = await s.send(socket, ping, { token: 10 });
        assertStatus(await c.wait(w, 'send after connect'), 'ok', ping.length, 'send after connect');
        await peer.until(() => peer.received >= ping.length, 'the ping');
        assertBytes(peer.data(), ping, 'bytes sent after connect');
        await c.quiet('after connect');
      });
    },
  },
  {
    id: 'CP-ACCEPT-004',
    async run(t, ctx) {
      const s = socketsOf(t, ctx);
      await withSocketPort(t, async (port, c, cleanup) => {
        const closed = await closedPort();
        const { socket, op } = await s.connect(port, { key: 44, token: 11, host: HOST, remotePort: closed });
        cleanup.push(() => s.close(socket).catch(() => undefined));
        const p = await c.wait(op, `connect to the closed port ${closed}`);
        assertStatus(p, 'refused', 0, `connect to the closed port ${closed}`);
        assert.equal(p.key, 44);
        ctx.log(`refused: nativeError ${p.nativeError}`);
        await c.quiet('after the refused connect');
      });
    },
  },
];

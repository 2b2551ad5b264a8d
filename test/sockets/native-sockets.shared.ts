// The native target's sockets through the Target interface, over real loopback connections: the body shared
// by native-epoll.test.ts and native-uring.test.ts (one back-end each; both must show the same semantics).
// The peer side is a Node `net` socket the test drives segment by segment, half-closes (end()) or resets
// (resetAndDestroy()). Every wait is bounded; "nothing more arrives" is checked with a short bounded
// dequeue, never by sleeping.
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { TargetError, type Packet, type PortId, type SocketApi, type Target } from '../../reference/src/target.ts';
import { createNativeTarget } from '../../native/js/target.ts';

const ECONNRESET = 104;
const ECONNREFUSED = 111;
const ECANCELED = 125;
const WAIT = 10_000;

/** Registers the whole suite for one native back-end ('epoll' or 'uring'). */
export function nativeSocketSuite(backend: 'epoll' | 'uring'): void {
  let target: Target;
  let api: SocketApi;
  let port: PortId;
  const cleanups: (() => void)[] = [];

  beforeAll(async () => {
    target = await createNativeTarget({ backend });
    api = target.sockets!;
  });

  afterEach(async () => {
    for (const c of cleanups.splice(0)) c();
    await target.reset();
  });

  afterAll(async () => {
    await target.dispose();
  });

  async function freshPort(): Promise<PortId> {
    port = await target.createPort(0);
    return port;
  }

  async function next(): Promise<Packet> {
    const r = await target.dequeue(port, WAIT);
    if (r.kind !== 'packet') throw new Error(`expected a packet, got ${r.kind}`);
    return r.packet;
  }

  async function expectIdle(ms = 100): Promise<void> {
    const r = await target.dequeue(port, ms);
    expect(r.kind).toBe('timeout');
  }

  /** A Node server on 127.0.0.1; `peer()` resolves with the next connection it accepts. */
  async function nodeServer(): Promise<{ port: number; peer: () => Promise<net.Socket> }> {
    const queue: net.Socket[] = [];
    const waiters: ((s: net.Socket) => void)[] = [];
    const server = net.createServer((s) => {
      cleanups.push(() => s.destroy());
      const w = waiters.shift();
      if (w) w(s);
      else queue.push(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => server.close());
    const addr = server.address() as net.AddressInfo;
    return {
      port: addr.port,
      peer: () => {
        const s = queue.shift();
        return s ? Promise.resolve(s) : new Promise((r) => waiters.push(r));
      },
    };
  }

  /** A target listener (key 1), one accepted connection (key 2) and its Node peer. */
  async function connection(): Promise<{ listener: number; sock: number; peer: net.Socket; lport: number }> {
    await freshPort();
    const l = await api.listen(port, { key: 1 });
    const aop = await api.accept(l.socket, { token: 900, newKey: 2 });
    // allowHalfOpen: the peer keeps its send side open after our shutdown('send'), as a half-close should
    const peer = net.connect({ port: l.address.port, host: '127.0.0.1', allowHalfOpen: true });
    peer.setNoDelay(true);
    cleanups.push(() => peer.destroy());
    await new Promise<void>((r, j) => peer.once('connect', r).once('error', j));
    const p = await next();
    expect(p).toMatchObject({ key: 1, op: aop, status: 'ok', token: 900 });
    return { listener: l.socket, sock: p.socket!, peer, lport: l.address.port };
  }

  function collect(peer: net.Socket): { data: () => Buffer; ended: Promise<void> } {
    const chunks: Buffer[] = [];
    peer.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise<void>((r) => peer.once('end', r));
    return { data: () => Buffer.concat(chunks), ended };
  }

  async function waitFor(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + WAIT;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  function pattern(n: number, seed: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 10)) & 0xff;
    return b;
  }

  async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
    await expect(p).rejects.toBeInstanceOf(TargetError);
    await expect(p).rejects.toMatchObject({ code });
  }

  describe(`native ${backend} sockets`, () => {
    test('info declares the socket capabilities', async () => {
      const info = await target.info();
      expect(info.backend).toBe(backend);
      for (const c of ['sockets', 'sockets.zero-length-probe', 'sockets.partial-send-mode', 'fault-injection']) {
        expect(info.capabilities).toContain(c);
      }
    });

    test('accept completes with the listener key and a new socket associated under newKey', async () => {
      const { sock, peer } = await connection();
      expect(sock).toBeGreaterThan(0);
      const r = await api.recv(sock, { length: 16, token: 5 });
      peer.write('hi');
      const p = await next();
      expect(p).toMatchObject({ key: 2, op: r, token: 5, status: 'ok', bytes: 2 });
      expect(Buffer.from(p.data!).toString()).toBe('hi');
    });

    test('N connections with N accepts pending give exactly N accept completions', async () => {
      await freshPort();
      const l = await api.listen(port, { key: 1 });
      const ops = new Set<number>();
      for (let i = 0; i < 5; i++) ops.add(await api.accept(l.socket, { token: i, newKey: 10 + i }));
      for (let i = 0; i < 5; i++) {
        const c = net.connect(l.address.port, '127.0.0.1');
        cleanups.push(() => c.destroy());
      }
      const sockets = new Set<number>();
      for (let i = 0; i < 5; i++) {
        const p = await next();
        expect(p.status).toBe('ok');
        expect(p.key).toBe(1);
        expect(ops.delete(p.op!)).toBe(true);
        sockets.add(p.socket!);
      }
      expect(sockets.size).toBe(5);
      await expectIdle();
    });

    test('connect completes ok asynchronously and the socket is usable', async () => {
      await freshPort();
      const srv = await nodeServer();
      const c = await api.connect(port, { key: 7, token: 8, host: '127.0.0.1', remotePort: srv.port });
      expect(c.socket).toBeGreaterThan(0);
      const p = await next();
      expect(p).toMatchObject({ key: 7, token: 8, op: c.op, status: 'ok', bytes: 0 });
      const peer = await srv.peer();
      const got = collect(peer);
      const s = await api.send(c.socket, Buffer.from('ping'), { token: 9 });
      expect(await next()).toMatchObject({ op: s, status: 'ok', bytes: 4, key: 7 });
      await waitFor(() => got.data().length === 4, 'the peer to get 4 bytes');
      expect(got.data().toString()).toBe('ping');
    });

    test('a refused connect is an asynchronous refused completion', async () => {
      await freshPort();
      const srv = net.createServer();
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const closedPort = (srv.address() as net.AddressInfo).port;
      await new Promise<void>((r) => srv.close(() => r()));
      const c = await api.connect(port, { key: 3, token: 4, host: '127.0.0.1', remotePort: closedPort });
      const p = await next();
      expect(p).toMatchObject({ key: 3, token: 4, op: c.op, status: 'refused', nativeError: ECONNREFUSED, bytes: 0 });
    });

    test('recv gets the data segment by segment, exactly', async () => {
      const { sock, peer } = await connection();
      const segments = ['a', 'bc', 'defghij', 'x'.repeat(1000), '\u0000\u0001'];
      for (const [i, seg] of segments.entries()) {
        const r = await api.recv(sock, { length: 4096, token: i });
        peer.write(seg);
        const p = await next();
        expect(p).toMatchObject({ op: r, status: 'ok', bytes: Buffer.byteLength(seg) });
        expect(Buffer.from(p.data!).toString()).toBe(seg);
      }
    });

    test('graceful close is eof/0 after all data, and eof is sticky', async () => {
      const { sock, peer } = await connection();
      const sent = pattern(100_000, 1);
      peer.end(sent);
      const chunks: Buffer[] = [];
      for (;;) {
        await api.recv(sock, { length: 7000, token: 1 });
        const p = await next();
        if (p.status === 'eof') {
          expect(p.bytes).toBe(0);
          break;
        }
        expect(p.status).toBe('ok');
        expect(p.bytes).toBeGreaterThan(0);
        expect(p.bytes).toBeLessThanOrEqual(7000);
        expect(p.data!.length).toBe(p.bytes);
        chunks.push(Buffer.from(p.data!));
      }
      expect(Buffer.concat(chunks).equals(sent)).toBe(true);
      for (let i = 0; i < 3; i++) {
        const r = await api.recv(sock, { length: 10, token: 2 });
        expect(await next()).toMatchObject({ op: r, status: 'eof', bytes: 0 });
      }
    });

    test('a reset completes the pending recv with reset (not 0-byte success); the next recv and send fail', async () => {
      const { sock, peer } = await connection();
      const r = await api.recv(sock, { length: 100, token: 1 });
      peer.resetAndDestroy();
      const p = await next();
      expect(p).toMatchObject({ op: r, status: 'reset', bytes: 0, nativeError: ECONNRESET });
      const r2 = await api.recv(sock, { length: 100, token: 2 });
      expect(await next()).toMatchObject({ op: r2, status: 'reset', bytes: 0 });
      const s = await api.send(sock, Buffer.from('x'), { token: 3 });
      expect(await next()).toMatchObject({ op: s, status: 'reset', bytes: 0 });
    });

    test('a probe pends, completes ok/0 consuming nothing, and the next recv gets the bytes', async () => {
      const { sock, peer } = await connection();
      const pr = await api.recv(sock, { length: 0, token: 1 });
      await expectIdle();
      peer.write('xyz');
      const p = await next();
      expect(p).toMatchObject({ op: pr, status: 'ok', bytes: 0 });
      expect(p.data === undefined || p.data.length === 0).toBe(true);
      // data already there: a probe completes at once (still through a packet)
      const pr2 = await api.recv(sock, { length: 0, token: 2 });
      expect(await next()).toMatchObject({ op: pr2, status: 'ok', bytes: 0 });
      const r = await api.recv(sock, { length: 100, token: 3 });
      const q = await next();
      expect(q).toMatchObject({ op: r, status: 'ok', bytes: 3 });
      expect(Buffer.from(q.data!).toString()).toBe('xyz');
    });

    test('a pending probe completes on peer close (eof) and on reset', async () => {
      const a = await connection();
      const pr = await api.recv(a.sock, { length: 0, token: 1 });
      a.peer.end();
      expect(await next()).toMatchObject({ op: pr, status: 'eof', bytes: 0 });
      const b = await connection();
      const pr2 = await api.recv(b.sock, { length: 0, token: 2 });
      b.peer.resetAndDestroy();
      expect(await next()).toMatchObject({ op: pr2, status: 'reset', bytes: 0 });
    });

    test('8 MiB through SO_SNDBUF 4096 to a slow reader arrives whole, with the full count', async () => {
      const { sock, peer } = await connection();
      await api.setBuffers(sock, { send: 4096 });
      const data = pattern(8 << 20, 7);
      const chunks: Buffer[] = [];
      let got = 0;
      peer.on('data', (d: Buffer) => {
        chunks.push(d);
        got += d.length;
        // slow reader: pause now and then
        if (chunks.length % 16 === 0) {
          peer.pause();
          setTimeout(() => peer.resume(), 1);
        }
      });
      const s = await api.send(sock, data, { token: 1 });
      const p = await next();
      expect(p).toMatchObject({ op: s, status: 'ok', bytes: data.length });
      await waitFor(() => got >= data.length, 'the peer to read 8 MiB');
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }, 60_000);

    test('several outstanding sends are transmitted and completed in issue order', async () => {
      const { sock, peer } = await connection();
      await api.setBuffers(sock, { send: 4096 });
      const got = collect(peer);
      const parts = Array.from({ length: 8 }, (_, i) => pattern(50_000 + i * 1000, i));
      const ops: number[] = [];
      for (const [i, part] of parts.entries()) ops.push(await api.send(sock, part, { token: i }));
      for (const [i, part] of parts.entries()) {
        const p = await next();
        expect(p).toMatchObject({ op: ops[i], token: i, status: 'ok', bytes: part.length });
      }
      const all = Buffer.concat(parts);
      await waitFor(() => got.data().length >= all.length, 'all the bytes');
      expect(got.data().equals(all)).toBe(true);
    });

    test('partial mode reports exact prefixes and resending the rest completes the stream', async () => {
      const { sock, peer } = await connection();
      const got = collect(peer);
      await api.setFaults(sock, { maxBytesPerCall: 1000 });
      const data = pattern(5500, 3);
      let off = 0;
      let first = true;
      while (off < data.length) {
        const s = await api.send(sock, data.subarray(off), { token: off, partial: true });
        const p = await next();
        expect(p).toMatchObject({ op: s, status: 'ok' });
        expect(p.bytes).toBe(Math.min(1000, data.length - off));
        if (first) {
          // the peer gets exactly the reported prefix
          await waitFor(() => got.data().length >= p.bytes, 'the first prefix');
          expect(got.data().equals(data.subarray(0, p.bytes))).toBe(true);
          first = false;
        }
        off += p.bytes;
      }
      await waitFor(() => got.data().length >= data.length, 'the whole stream');
      expect(got.data().equals(data)).toBe(true);
    });

    test('fault injection: capped calls are absorbed; the nth recv fails with the injected errno', async () => {
      const { sock, peer } = await connection();
      const got = collect(peer);
      await api.setFaults(sock, { maxBytesPerCall: 333 });
      const data = pattern(100_000, 9);
      const s = await api.send(sock, data, { token: 1 });
      expect(await next()).toMatchObject({ op: s, status: 'ok', bytes: data.length });
      await waitFor(() => got.data().length >= data.length, 'the capped send');
      expect(got.data().equals(data)).toBe(true);
      // receives are capped too, and deliver every byte
      peer.write(pattern(2000, 4));
      const chunks: Buffer[] = [];
      while (Buffer.concat(chunks).length < 2000) {
        await api.recv(sock, { length: 4096, token: 2 });
        const p = await next();
        expect(p.status).toBe('ok');
        expect(p.bytes).toBeLessThanOrEqual(333);
        chunks.push(Buffer.from(p.data!));
      }
      expect(Buffer.concat(chunks).equals(pattern(2000, 4))).toBe(true);
      // fail the 2nd recv call with ECONNRESET
      await api.setFaults(sock, { failNth: { call: 'recv', n: 2, errno: ECONNRESET } });
      peer.write('abcdef');
      const r1 = await api.recv(sock, { length: 3, token: 3 });
      expect(await next()).toMatchObject({ op: r1, status: 'ok', bytes: 3 });
      const r2 = await api.recv(sock, { length: 3, token: 4 });
      const p2 = await next();
      expect(p2).toMatchObject({ op: r2, status: 'reset', nativeError: ECONNRESET, bytes: 0 });
    });

    test('close with a recv, a send and an accept pending completes each exactly once with aborted', async () => {
      const { listener, sock, peer } = await connection();
      peer.pause();
      await api.setBuffers(sock, { send: 4096 });
      const r = await api.recv(sock, { length: 100, token: 1 });
      const s = await api.send(sock, pattern(8 << 20, 2), { token: 2 });
      const a = await api.accept(listener, { token: 3, newKey: 9 });
      await expectIdle();
      await api.close(sock);
      await api.close(listener);
      const seen = new Map<number, Packet>();
      for (let i = 0; i < 3; i++) {
        const p = await next();
        expect(p.status).toBe('aborted');
        expect(p.nativeError).toBe(ECANCELED);
        expect(seen.has(p.op!)).toBe(false);
        seen.set(p.op!, p);
      }
      expect(seen.get(r)).toMatchObject({ bytes: 0, key: 2 });
      expect(seen.get(s)!.bytes).toBeLessThan(8 << 20);
      expect(seen.get(a)).toMatchObject({ bytes: 0, key: 1 });
      await expectIdle();
      // later operations on a closed socket fail synchronously
      await rejectsWith(api.recv(sock, { length: 1, token: 1 }), 'invalid');
      await rejectsWith(api.cancel(sock), 'invalid');
    });

    test('closing an idle socket queues nothing', async () => {
      const { sock } = await connection();
      await api.close(sock);
      await expectIdle();
    });

    test('cancel aborts a pending recv once and the unread data arrives to the next recv', async () => {
      const { sock, peer } = await connection();
      const r = await api.recv(sock, { length: 100, token: 1 });
      expect(await api.cancel(sock, r)).toBe('ok');
      expect(await next()).toMatchObject({ op: r, status: 'aborted', bytes: 0, nativeError: ECANCELED });
      expect(await api.cancel(sock, r)).toBe('not-found');
      peer.write('later');
      const r2 = await api.recv(sock, { length: 100, token: 2 });
      const p = await next();
      expect(p).toMatchObject({ op: r2, status: 'ok', bytes: 5 });
      expect(Buffer.from(p.data!).toString()).toBe('later');
      await expectIdle();
    });

    test('cancel of a completed op is not-found and yields no second packet', async () => {
      const { sock, peer } = await connection();
      peer.write('q');
      const r = await api.recv(sock, { length: 10, token: 1 });
      expect(await next()).toMatchObject({ op: r, status: 'ok', bytes: 1 });
      expect(await api.cancel(sock, r)).toBe('not-found');
      expect(await api.cancel(sock)).toBe('not-found');
      await expectIdle();
    });

    test('sending to a reset peer is an error completion and the process survives (no SIGPIPE)', async () => {
      const { sock, peer } = await connection();
      peer.resetAndDestroy();
      let status = 'ok';
      for (let i = 0; i < 50 && status === 'ok'; i++) {
        const s = await api.send(sock, pattern(65536, i), { token: i });
        const p = await next();
        expect(p.op).toBe(s);
        status = p.status;
        if (status !== 'ok') {
          expect(p.bytes).toBeLessThan(65536);
          expect(p.nativeError).not.toBe(0);
        }
      }
      expect(status).toBe('reset');
      expect(process.pid).toBeGreaterThan(0); // still here
    });

    test('several pending recvs are filled in issue order', async () => {
      const { sock, peer } = await connection();
      const ops: number[] = [];
      for (let i = 0; i < 3; i++) ops.push(await api.recv(sock, { length: 4, token: i }));
      peer.write('aaaabbbbcccc');
      const got: string[] = [];
      for (let i = 0; i < 3; i++) {
        const p = await next();
        expect(p).toMatchObject({ op: ops[i], token: i, status: 'ok', bytes: 4 });
        got.push(Buffer.from(p.data!).toString());
      }
      expect(got).toEqual(['aaaa', 'bbbb', 'cccc']);
    });

    test('a send after shutdown(send) fails; the shutdown queues nothing and the peer sees eof', async () => {
      const { sock, peer } = await connection();
      const ended = new Promise<void>((r) => peer.once('end', r));
      peer.resume();
      await api.shutdown(sock, 'send');
      await expectIdle();
      await ended;
      const s = await api.send(sock, Buffer.from('late'), { token: 1 });
      const p = await next();
      expect(p.op).toBe(s);
      expect(p.status).not.toBe('ok');
      expect(p.bytes).toBe(0);
      // the receive direction still works
      const r = await api.recv(sock, { length: 10, token: 2 });
      peer.write('still');
      const q = await next();
      expect(q).toMatchObject({ op: r, status: 'ok', bytes: 5 });
    });

    test('bad arguments and unknown sockets reject with invalid', async () => {
      await freshPort();
      await rejectsWith(api.recv(12345, { length: 1, token: 1 }), 'invalid');
      await rejectsWith(api.send(12345, Buffer.from('x'), { token: 1 }), 'invalid');
      await rejectsWith(api.listen(9999, { key: 1 }), 'invalid');
      await rejectsWith(api.recv(1.5, { length: 1, token: 1 }), 'invalid');
      await rejectsWith(api.cancel(12345), 'invalid');
    });
  });
}

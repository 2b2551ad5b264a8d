// Focused unit tests of the model's sockets (reference/src/model/sockets.ts): packet fields, validation,
// fault injection, partial mode, shutdown, reset/dispose. The scenarios themselves are in model-spec.test.ts.
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { statusOfErrno } from '../../reference/src/model/sockets.ts';
import { TargetError, type Packet, type PortId, type SocketApi, type Target } from '../../reference/src/target.ts';
import { Completions, PeerServer, closedPort, pattern, peerConnect, type Peer } from '../../spec/cases/peer.ts';

let t: Target;
let s: SocketApi;
let port: PortId;
let c: Completions;
const servers: PeerServer[] = [];

beforeEach(async () => {
  t = createModelTarget();
  s = t.sockets!;
  port = await t.createPort(0);
  c = new Completions(t, port);
});

afterEach(async () => {
  for (const sv of servers.splice(0)) sv.close();
  await t.dispose();
});

async function pair(key = 1): Promise<{ socket: number; peer: Peer }> {
  const server = await PeerServer.listen();
  servers.push(server);
  const { socket, op } = await s.connect(port, { key, token: 0, host: '127.0.0.1', remotePort: server.port });
  expect((await c.wait(op, 'connect')).status).toBe('ok');
  return { socket, peer: await server.next() };
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(TargetError);
  await p.catch((e: TargetError) => expect(e.code).toBe(code));
}

describe('model sockets', () => {
  test('declares the socket capabilities', async () => {
    const info = await t.info();
    for (const cap of ['sockets', 'sockets.zero-length-probe', 'sockets.partial-send-mode', 'fault-injection']) expect(info.capabilities).toContain(cap);
  });

  test('socket packets carry op/data/socket; posted packets stay plain, in FIFO order with them', async () => {
    const { socket, peer } = await pair(5);
    await t.post(port, { key: 100, bytes: 1, token: 2 });
    await peer.write(new Uint8Array([1, 2, 3]));
    const op = await s.recv(socket, { length: 10, token: 9 });
    await new Promise((r) => setTimeout(r, 100));
    await t.post(port, { key: 101 });
    const r = await t.dequeueMany(port, 10, 1000);
    expect(r.kind).toBe('packets');
    const ps = (r as { packets: Packet[] }).packets;
    expect(ps).toEqual([
      { key: 100, bytes: 1, token: 2, status: 'ok', nativeError: 0 },
      { key: 5, bytes: 3, token: 9, status: 'ok', nativeError: 0, op, data: new Uint8Array([1, 2, 3]) },
      { key: 101, bytes: 0, token: 0, status: 'ok', nativeError: 0 },
    ]);
  });

  test('closePort drains socket packets with their fields', async () => {
    const { socket } = await pair(6);
    const op = await s.recv(socket, { length: 10, token: 3 });
    await s.close(socket);
    const left = await t.closePort(port);
    expect(left).toEqual([{ key: 6, bytes: 0, token: 3, status: 'aborted', nativeError: 125, op, data: new Uint8Array(0) }]);
  });

  test('the port fault duplicateEvery keeps socket fields aligned', async () => {
    const t2 = createModelTarget({ faults: { duplicateEvery: 2 } });
    try {
      const p2 = await t2.createPort(0);
      const sv = await PeerServer.listen();
      servers.push(sv);
      const { socket, op } = await t2.sockets!.connect(p2, { key: 7, token: 1, host: '127.0.0.1', remotePort: sv.port });
      await t2.post(p2, { key: 8 }); // posted #1 or #2 depending on timing of the connect completion
      await new Promise((r) => setTimeout(r, 100));
      const r = await t2.dequeueMany(p2, 10, 1000);
      const ps = (r as { packets: Packet[] }).packets;
      expect(ps.length).toBe(3);
      for (const p of ps) {
        if (p.key === 7) expect(p.op).toBe(op);
        else expect(p.op).toBeUndefined();
      }
      await t2.sockets!.close(socket);
    } finally {
      await t2.dispose();
    }
  });

  test('bad arguments and closed sockets are rejected with invalid', async () => {
    const { socket } = await pair();
    await rejects(s.recv(socket, { length: -1, token: 0 }), 'invalid');
    await rejects(s.recv(socket, { length: 1, token: 1.5 }), 'invalid');
    await rejects(s.send(socket, 'x' as unknown as Uint8Array, { token: 0 }), 'invalid');
    await rejects(s.shutdown(socket, 'up' as 'send'), 'invalid');
    await rejects(s.setFaults(socket, { failNth: { call: 'write' as 'send', n: 1, errno: 104 } }), 'invalid');
    await rejects(s.connect(port, { key: 1, token: 1, host: '127.0.0.1', remotePort: 0 }), 'invalid');
    await rejects(s.listen(999, { key: 1 }), 'invalid');
    await rejects(s.cancel(socket, 0), 'invalid');
    await s.close(socket);
    await rejects(s.recv(socket, { length: 1, token: 0 }), 'invalid');
    await rejects(s.close(socket), 'invalid');
    await rejects(s.cancel(socket), 'invalid');
    const { socket: l } = await s.listen(port, { key: 2 });
    await rejects(s.recv(l, { length: 1, token: 0 }), 'invalid');
    await rejects(s.accept(socket, { token: 0, newKey: 1 }), 'invalid');
    await t.closePort(port);
    await rejects(s.connect(port, { key: 1, token: 1, host: '127.0.0.1', remotePort: 1 }), 'closed');
  });

  test('failNth recv fails that call with the mapped status; the data stays', async () => {
    const { socket, peer } = await pair();
    await s.setFaults(socket, { failNth: { call: 'recv', n: 2, errno: 104 } });
    await peer.write(pattern(100, 1));
    await new Promise((r) => setTimeout(r, 50));
    const a = await c.wait(await s.recv(socket, { length: 10, token: 1 }), 'recv 1');
    expect([a.status, a.bytes]).toEqual(['ok', 10]);
    const b = await c.wait(await s.recv(socket, { length: 10, token: 2 }), 'recv 2');
    expect([b.status, b.bytes, b.nativeError]).toEqual(['reset', 0, 104]);
    const d = await c.wait(await s.recv(socket, { length: 1000, token: 3 }), 'recv 3');
    expect(d.data).toEqual(pattern(100, 1).subarray(10));
  });

  test('failNth send: the error carries the exact prefix; the peer got exactly that', async () => {
    const { socket, peer } = await pair();
    await s.setFaults(socket, { maxBytesPerCall: 1000, failNth: { call: 'send', n: 4, errno: 32 } });
    const p = await c.wait(await s.send(socket, pattern(10_000, 2), { token: 1 }), 'send');
    expect([p.status, p.bytes, p.nativeError]).toEqual(['reset', 3000, 32]);
    await peer.until(() => peer.received >= 3000, '3000 bytes');
    await new Promise((r) => setTimeout(r, 50));
    expect(peer.data()).toEqual(pattern(10_000, 2).subarray(0, 3000));
  });

  test('partial mode with maxBytesPerCall completes with the capped prefix', async () => {
    const { socket, peer } = await pair();
    await s.setFaults(socket, { maxBytesPerCall: 777 });
    const p = await c.wait(await s.send(socket, pattern(5000, 3), { token: 1, partial: true }), 'partial send');
    expect([p.status, p.bytes]).toEqual(['ok', 777]);
    const q = await c.wait(await s.send(socket, pattern(5000, 3), { token: 2 }), 'default send');
    expect([q.status, q.bytes]).toEqual(['ok', 5000]);
    await peer.until(() => peer.received >= 5777, 'all');
  });

  test('partial mode takes at most the recorded send-buffer size per call; zero-length sends complete ok/0', async () => {
    const { socket } = await pair();
    await s.setBuffers(socket, { send: 4096, recv: 8192 });
    const p = await c.wait(await s.send(socket, pattern(100_000, 4), { token: 1, partial: true }), 'partial');
    expect([p.status, p.bytes]).toEqual(['ok', 4096]);
    const z = await c.wait(await s.send(socket, new Uint8Array(0), { token: 2 }), 'empty');
    expect([z.status, z.bytes]).toEqual(['ok', 0]);
  });

  test('shutdown(recv) completes a pending recv with eof; shutdown queues nothing', async () => {
    const { socket } = await pair();
    const op = await s.recv(socket, { length: 10, token: 1 });
    await s.shutdown(socket, 'recv');
    const p = await c.wait(op, 'recv after shutdown(recv)');
    expect([p.status, p.bytes]).toEqual(['eof', 0]);
    await c.quiet('no packet for shutdown');
  });

  test('abortive close resets the peer; graceful close ends it', async () => {
    const a = await pair();
    await s.close(a.socket, { abortive: true });
    await a.peer.until(() => a.peer.error !== undefined || a.peer.closed, 'reset');
    expect((a.peer.error as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNRESET');
    const b = await pair();
    await s.close(b.socket);
    await b.peer.until(() => b.peer.ended, 'end');
    expect(b.peer.error).toBeUndefined();
  });

  test('cancel of a send in flight reports the exact prefix handed over', async () => {
    const { socket, peer } = await pair();
    peer.pause();
    await s.setFaults(socket, { maxBytesPerCall: 64 * 1024 });
    const n = 32 * 1024 * 1024;
    const op = await s.send(socket, pattern(n, 5), { token: 1 });
    await c.stillPending(op, 'big send', 200);
    expect(await s.cancel(socket, op)).toBe('ok');
    const p = await c.wait(op, 'cancelled send');
    expect(p.status).toBe('aborted');
    expect(p.bytes % (64 * 1024)).toBe(0);
    expect(p.bytes).toBeLessThan(n);
    peer.resume();
    await peer.until(() => peer.received >= p.bytes, 'the prefix');
    await new Promise((r) => setTimeout(r, 100));
    expect(peer.received).toBe(p.bytes);
    expect(peer.data()).toEqual(pattern(n, 5).subarray(0, p.bytes));
  });

  test('a listener queues connections that arrive before the accept', async () => {
    const { socket: l, address } = await s.listen(port, { key: 3 });
    const peer = await peerConnect(address.port);
    await peer.write(new Uint8Array([9]));
    await new Promise((r) => setTimeout(r, 50));
    const p = await c.wait(await s.accept(l, { token: 1, newKey: 30 }), 'accept');
    expect([p.status, p.key]).toEqual(['ok', 3]);
    const r = await c.wait(await s.recv(p.socket!, { length: 10, token: 2 }), 'recv');
    expect([r.key, r.data]).toEqual([30, new Uint8Array([9])]);
    peer.destroy();
  });

  test('reset() closes every socket silently; ports and listeners are gone', async () => {
    const { socket: l, address } = await s.listen(port, { key: 4 });
    await s.accept(l, { token: 1, newKey: 40 });
    await t.reset();
    await rejects(s.close(l), 'invalid');
    const refused = net.connect({ host: '127.0.0.1', port: address.port });
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => refused.once('error', resolve));
    expect(err.code).toBe('ECONNREFUSED');
  });

  test('errno mapping', async () => {
    expect(statusOfErrno(104)).toBe('reset');
    expect(statusOfErrno(32)).toBe('reset');
    expect(statusOfErrno(111)).toBe('refused');
    expect(statusOfErrno(125)).toBe('aborted');
    expect(statusOfErrno(110)).toBe('timeout');
    expect(statusOfErrno(22)).toBe('closed');
    const p = await closedPort();
    const { op } = await s.connect(port, { key: 1, token: 1, host: '127.0.0.1', remotePort: p });
    const pk = await c.wait(op, 'refused');
    expect([pk.status, pk.nativeError]).toEqual(['refused', 111]);
  });
});

// The send-all helper (reference/src/send-all.ts) over the model's partial mode and fault injection.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { SendAllError, portWaiter, sendAll } from '../../reference/src/send-all.ts';
import { TargetError, type PortId, type SocketApi, type Target } from '../../reference/src/target.ts';
import { PeerServer, pattern, type Peer } from '../../spec/cases/peer.ts';

let t: Target;
let s: SocketApi;
let port: PortId;
let server: PeerServer;

beforeEach(async () => {
  t = createModelTarget();
  s = t.sockets!;
  port = await t.createPort(0);
  server = await PeerServer.listen();
});

afterEach(async () => {
  server.close();
  await t.dispose();
});

async function connected(): Promise<{ socket: number; peer: Peer }> {
  const { socket, op } = await s.connect(port, { key: 1, token: 0, host: '127.0.0.1', remotePort: server.port });
  const r = await t.dequeue(port, 5000);
  expect(r.kind === 'packet' && r.packet.op === op && r.packet.status === 'ok').toBe(true);
  return { socket, peer: await server.next() };
}

describe('sendAll', () => {
  test('resubmits the rest after every short completion, in order', async () => {
    const { socket, peer } = await connected();
    await s.setFaults(socket, { maxBytesPerCall: 1000 });
    const data = pattern(10_500, 1);
    const offsets: number[] = [];
    const r = await sendAll(s, socket, data, { token: 7, wait: portWaiter(t, port), onCompletion: (_p, off) => offsets.push(off) });
    expect(r).toEqual({ bytes: 10_500, sends: 11, shorts: 10 });
    expect(offsets).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000]);
    await peer.until(() => peer.received >= data.length, 'all bytes');
    expect(peer.data()).toEqual(data);
  });

  test('partial: false is one default-mode send', async () => {
    const { socket } = await connected();
    await s.setFaults(socket, { maxBytesPerCall: 1000 });
    expect(await sendAll(s, socket, pattern(5000, 2), { wait: portWaiter(t, port), partial: false })).toEqual({ bytes: 5000, sends: 1, shorts: 0 });
  });

  test('an empty buffer is one zero-byte send', async () => {
    const { socket } = await connected();
    expect(await sendAll(s, socket, new Uint8Array(0), { wait: portWaiter(t, port) })).toEqual({ bytes: 0, sends: 1, shorts: 0 });
  });

  test('an error carries the exact prefix sent', async () => {
    const { socket, peer } = await connected();
    await s.setFaults(socket, { maxBytesPerCall: 1000, failNth: { call: 'send', n: 3, errno: 104 } });
    const data = pattern(10_000, 3);
    const e = await sendAll(s, socket, data, { wait: portWaiter(t, port) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SendAllError);
    expect((e as SendAllError).sent).toBe(2000);
    expect((e as SendAllError).packet.status).toBe('reset');
    await peer.until(() => peer.received >= 2000, 'prefix');
    await new Promise((r) => setTimeout(r, 50));
    expect(peer.data()).toEqual(data.subarray(0, 2000));
  });

  test('portWaiter rejects a packet for another operation and a missing completion', async () => {
    await t.post(port, { key: 9 });
    await expect(portWaiter(t, port)(123)).rejects.toBeInstanceOf(TargetError);
    await expect(portWaiter(t, port, 20)(123)).rejects.toMatchObject({ code: 'timeout' });
  });
});

// Units: serveTarget (the JS driver server), the command splitter, line framing, and the driver client
// against serveTarget through a real pipe.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { serveTarget } from '../../conformance/src/serve.ts';
import { splitCommand } from '../../conformance/src/shell-split.ts';
import { LineSplitter, TailBuffer } from '../../conformance/src/lines.ts';
import { createDriverTarget } from '../../conformance/src/driver.ts';
import { createTarget } from '../fixtures/drivers/mini-target.ts';
import { FIXTURES } from '../fixtures/drivers/run-cli.ts';

function harness() {
  const input = new PassThrough();
  const output = new PassThrough();
  const done = serveTarget(createTarget(), input, output);
  const splitter = new LineSplitter();
  const answers = new Map<unknown, { result?: unknown; error?: { code: number; message: string; data?: { code: string } } }>();
  const waiters = new Map<unknown, (v: unknown) => void>();
  output.on('data', (d: Buffer) => {
    for (const line of splitter.push(d)) {
      const m = JSON.parse(line);
      answers.set(m.id, m);
      waiters.get(m.id)?.(m);
    }
  });
  let id = 0;
  const call = (method: string, params?: unknown) => {
    const myId = ++id;
    // Register before writing: a PassThrough may answer synchronously.
    const answer = new Promise<{ result?: any; error?: { code: number; message: string; data?: { code: string } } }>((resolve) => {
      waiters.set(myId, resolve as (v: unknown) => void);
    });
    input.write(`${JSON.stringify({ jsonrpc: '2.0', id: myId, method, params })}\n`);
    return answer;
  };
  const raw = (line: string) => {
    const answer = new Promise<any>((resolve) => waiters.set(null, resolve));
    input.write(`${line}\n`);
    return answer;
  };
  return { input, call, raw, done, answers };
}

describe('serveTarget', () => {
  it('handshake, method-not-found, errors, params', async () => {
    const h = harness();
    expect((await h.call('cpspec.hello', { protocol: 1, client: 't' })).result).toEqual({ protocol: 1, name: 'mini', version: '1.0.0' });
    expect((await h.call('cpspec.hello', { protocol: 2 })).error?.code).toBe(-32000);
    expect((await h.call('cpspec.no-such-method-abc')).error?.code).toBe(-32601);
    expect((await h.call('port.create', { concurrency: 'x' })).error?.code).toBe(-32602);
    const bad = await h.call('port.create', { concurrency: -1 });
    expect(bad.error?.code).toBe(-32000);
    expect(bad.error?.data?.code).toBe('invalid');
    expect((await h.raw('this is not json')).error.code).toBe(-32700);
    h.input.end();
    await h.done;
  });

  it('serves requests concurrently: an infinite dequeue does not block a post', async () => {
    const h = harness();
    const { result } = await h.call('port.create', { concurrency: 1 });
    const waiting = h.call('port.dequeue', { port: result.port, timeoutMs: -1 });
    expect((await h.call('port.post', { port: result.port, key: 5, bytes: 1, token: 2, status: 'ok', nativeError: 0 })).result).toEqual({});
    expect((await waiting).result).toEqual({ kind: 'packet', packet: { key: 5, bytes: 1, token: 2, status: 'ok', nativeError: 0 } });
    const closed = await h.call('port.close', { port: result.port });
    expect(closed.result).toEqual({ packets: [] });
    expect((await h.call('port.post', { port: result.port, key: 1 })).error?.data?.code).toBe('closed');
    expect((await h.call('shutdown')).result).toEqual({});
    await h.done;
  });
});

describe('driver client over a real process', () => {
  it('talks to a driver, maps errors to TargetError, and shuts it down', async () => {
    const t = await createDriverTarget([process.execPath, `${FIXTURES}/good.js`], { handshakeTimeoutMs: 5000 });
    expect((await t.info()).name).toBe('mini');
    const port = await t.createPort(1);
    const pending = t.dequeue(port, -1);
    await t.post(port, { key: 1, token: 9 });
    expect(await pending).toEqual({ kind: 'packet', packet: { key: 1, bytes: 0, token: 9, status: 'ok', nativeError: 0 } });
    await expect(t.createPort(5000)).rejects.toMatchObject({ name: 'TargetError', code: 'invalid' });
    await t.dispose();
    expect(t.failure()).toBeUndefined();
  });
});

describe('sockets through the JS driver server (serve-model) and the driver client', () => {
  const ROOT = new URL('../../', import.meta.url).pathname;
  const start = () => createDriverTarget([process.execPath, `${ROOT}conformance/bin/serve-model.js`], { handshakeTimeoutMs: 10000 });

  it('socket.* round-trip: op, socket and data (base64 on the wire, Uint8Array in packets)', async () => {
    const t = await start();
    try {
      const s = t.sockets;
      const port = await t.createPort(1);
      const l = await s.listen(port, { key: 1 });
      expect(l.address.port).toBeGreaterThan(0);
      const acceptOp = await s.accept(l.socket, { token: 10, newKey: 2 });
      const conn = await s.connect(port, { key: 3, token: 11, host: '127.0.0.1', remotePort: l.address.port });
      const got = [];
      for (let i = 0; i < 2; i++) {
        const r = await t.dequeue(port, 5000);
        if (r.kind !== 'packet') throw new Error(`expected a packet, got ${r.kind}`);
        got.push(r.packet);
      }
      const accepted = got.find((p) => p.op === acceptOp)!;
      expect(accepted).toMatchObject({ key: 1, token: 10, status: 'ok' });
      expect(typeof accepted.socket).toBe('number');
      expect(got.find((p) => p.op === conn.op)).toMatchObject({ key: 3, token: 11, status: 'ok' });
      const bytes = new Uint8Array(70_000).map((_, i) => (i * 13) & 0xff);
      const sendOp = await s.send(conn.socket, bytes, { token: 20 });
      const sent = await t.dequeue(port, 5000);
      expect(sent).toMatchObject({ kind: 'packet', packet: { op: sendOp, status: 'ok', bytes: bytes.length } });
      const received: number[] = [];
      while (received.length < bytes.length) {
        const op = await s.recv(accepted.socket!, { length: 100_000, token: 21 });
        const r = await t.dequeue(port, 5000);
        if (r.kind !== 'packet') throw new Error(`expected a packet, got ${r.kind}`);
        expect(r.packet.op).toBe(op);
        expect(r.packet.data).toBeInstanceOf(Uint8Array);
        expect(r.packet.data!.length).toBe(r.packet.bytes);
        received.push(...r.packet.data!);
      }
      expect(Uint8Array.from(received)).toEqual(bytes);
      expect(await s.cancel(accepted.socket!)).toBe('not-found');
      await s.setBuffers(conn.socket, { send: 8192 });
      await s.shutdown(conn.socket, 'send');
      await s.close(conn.socket, { abortive: true });
      await expect(s.recv(conn.socket, { length: 1, token: 0 })).rejects.toMatchObject({ name: 'TargetError', code: 'invalid' });
      await s.close(accepted.socket!);
      await s.close(l.socket);
    } finally {
      await t.dispose();
    }
    expect(t.failure()).toBeUndefined();
  });
});

describe('socket.* in serveTarget', () => {
  it('answers -32601 when the target has no sockets', async () => {
    const h = harness();
    expect((await h.call('socket.listen', { port: 1, key: 1 })).error?.code).toBe(-32601);
    h.input.end();
    await h.done;
  });
});

describe('driver client: socket fields of packets', () => {
  // A scripted driver: answers the handshake, then port.dequeue with the packet given in argv[1].
  const script = `
    const packet = JSON.parse(process.argv[1]);
    let buf = '';
    process.stdin.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        const answer = (x) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, ...x }) + '\\n');
        if (m.method === 'cpspec.hello') answer({ result: { protocol: 1, name: 'scripted', version: '1' } });
        else if (m.method === 'port.dequeue') answer({ result: { kind: 'packet', packet } });
        else if (m.method === 'socket.send') answer({ error: { code: -32000, message: 'reset', data: { code: 'reset', nativeError: 104 } } });
        else if (m.method === 'shutdown') { answer({ result: {} }); process.exit(0); }
        else answer({ error: { code: -32601, message: 'no' } });
      }
    });`;
  const base = { key: 1, bytes: 3, token: 2, status: 'ok', nativeError: 0 };
  const withPacket = (p: object) => createDriverTarget([process.execPath, '-e', script, JSON.stringify(p)], { handshakeTimeoutMs: 10000 });

  it('decodes data and keeps op, socket and buffer', async () => {
    const t = await withPacket({ ...base, op: 5, socket: 6, buffer: 7, data: Buffer.from('abc').toString('base64') });
    const r = await t.dequeue(1, 0);
    expect(r).toEqual({ kind: 'packet', packet: { ...base, op: 5, socket: 6, buffer: 7, data: new Uint8Array([97, 98, 99]) } });
    // A synchronous socket failure keeps its status name and errno.
    await expect(t.sockets.send(1, new Uint8Array(1), { token: 0 })).rejects.toMatchObject({ name: 'TargetError', code: 'reset', nativeError: 104 });
    await t.dispose();
  });

  it.each([
    ['data that is not base64', { data: 'a*c=' }],
    ['data that is not a string', { data: [1, 2] }],
    ['an op that is not a number', { op: '5' }],
    ['a socket that is not an integer', { socket: 1.5 }],
  ])('rejects a packet with %s as a protocol error', async (_what, extra) => {
    const t = await withPacket({ ...base, ...extra });
    await expect(t.dequeue(1, 0)).rejects.toMatchObject({ name: 'TargetError', code: 'protocol' });
    await t.dispose();
  });
});

describe('splitCommand', () => {
  it.each([
    ['a b  c', ['a', 'b', 'c']],
    [`node 'my dir/x.js' "--name=a b"`, ['node', 'my dir/x.js', '--name=a b']],
    [`a\\ b "q\\"x" 'l\\n'`, ['a b', 'q"x', 'l\\n']],
    [`x "" ''`, ['x', '', '']],
    [`  `, []],
  ])('%s', (cmd, words) => {
    expect(splitCommand(cmd)).toEqual(words);
  });
  it('rejects unterminated quotes', () => {
    expect(() => splitCommand(`a 'b`)).toThrow(/unterminated/);
    expect(() => splitCommand(`a "b`)).toThrow(/unterminated/);
  });
});

describe('framing', () => {
  it('splits lines across chunks and multi-byte characters', () => {
    const s = new LineSplitter();
    const bytes = Buffer.from('{"a":"é"}\r\n{"b":1}\npartial');
    const lines: string[] = [];
    for (let i = 0; i < bytes.length; i++) lines.push(...s.push(bytes.subarray(i, i + 1)));
    expect(lines).toEqual(['{"a":"é"}', '{"b":1}']);
    expect(s.end()).toBe('partial');
  });
  it('bounds a line without newline', () => {
    const s = new LineSplitter(10);
    expect(() => s.push('x'.repeat(11))).toThrow(/longer than 10/);
  });
  it('keeps only the tail of stderr', () => {
    const t = new TailBuffer(8);
    for (let i = 0; i < 100; i++) t.write(`line${i}\n`);
    expect(t.text().endsWith('line99\n')).toBe(true);
    expect(t.text().length).toBeLessThanOrEqual(9);
  });
});

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

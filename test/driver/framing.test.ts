// Framing (framing.*) methods of the driver protocol (conformance/PROTOCOL.md, "Packet framing"): the
// standalone native driver (native/driver/framing_rpc.cpp over the C++ codec) and the JS driver server
// (conformance/src/serve.ts over the model's TypeScript codec), both spoken to through the runner's driver
// client, checked against the in-process TypeScript codec; and raw JSON-RPC garbage that must come back as
// clear errors, never a crash.
//
// The binary: see ./locate.ts (env CPSPEC_DRIVER, else the release build).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDriverTarget, type DriverTarget } from '../../conformance/src/driver.ts';
import { CodecFramingApi, tsCodec } from '../../reference/src/framing/api.ts';
import type { FramingApi, WireFrame } from '../../reference/src/target.ts';
import { driverPath } from './locate.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:|ThreadSanitizer: reported/;

interface Response {
  id: number;
  result?: any;
  error?: { code: number; message: string; data?: { code: string; nativeError: number } };
}

/** A raw JSON-RPC client: what a hostile or buggy runner could send. */
class Raw {
  readonly proc: ChildProcessWithoutNullStreams;
  stderr = '';
  private nextId = 1;
  private readonly waiters = new Map<number, (r: Response) => void>();
  readonly exited: Promise<number | null>;

  constructor(argv: string[]) {
    this.proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdin.on('error', () => {});
    createInterface({ input: this.proc.stdout, crlfDelay: Infinity }).on('line', (line) => {
      const m = JSON.parse(line) as Response;
      this.waiters.get(m.id)?.(m);
      this.waiters.delete(m.id);
    });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  call(method: string, params: unknown): Promise<Response> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to ${method} within 10 s; stderr: ${this.stderr}`)), 10_000);
      this.waiters.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  async ok(method: string, params: unknown = {}): Promise<any> {
    const r = await this.call(method, params);
    if (r.error) throw new Error(`${method} ${JSON.stringify(params)} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  async end(): Promise<number | null> {
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

const b64 = (b: Uint8Array | number[]) => Buffer.from(Uint8Array.from(b)).toString('base64');
const plain = (fs: WireFrame[]) => fs.map((f) => ({ type: f.type, sequence: f.sequence, playerId: f.playerId, payload: Array.from(f.payload) }));

const frameArb = fc.record({
  type: fc.integer({ min: 0, max: 0xfffe }),
  sequence: fc.integer({ min: 0, max: 0xffffffff }),
  playerId: fc.integer({ min: 0, max: 0xffffffff }),
  payload: fc.uint8Array({ maxLength: 300 }),
});

const drivers: Array<[string, () => string[]]> = [
  ['native driver', () => [driverPath()]],
  ['JS driver server over the model (serve-model)', () => [process.execPath, path.join(ROOT, 'conformance/bin/serve-model.js')]],
];

for (const [name, argv] of drivers) {
  describe(`framing through the driver client: ${name}`, () => {
    let d: DriverTarget;
    const oracle: FramingApi = new CodecFramingApi(tsCodec);
    beforeAll(async () => {
      d = await createDriverTarget(argv(), { handshakeTimeoutMs: 10_000 });
    });
    afterAll(async () => {
      await d?.dispose();
    });

    it('declares the framing capability', async () => {
      expect((await d.info()).capabilities).toContain('framing');
    });

    it('encode, chunked feed and end agree with the TypeScript codec (differential, 40 cases)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(frameArb, { maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }), fc.nat(50), async (frames, sizes, cut) => {
          const bytes = await d.framing.encode(frames);
          expect(Array.from(bytes)).toEqual(Array.from(await oracle.encode(frames)));
          // Drop the last `cut` bytes so that end() sometimes reports truncated.
          const stream = bytes.subarray(0, Math.max(0, bytes.length - cut));
          const run = async (f: FramingApi) => {
            const dec = await f.createDecoder({ maxSize: 200 });
            const out: unknown[] = [];
            for (let at = 0, i = 0; at < stream.length; i++) {
              const n = sizes[i % sizes.length];
              const r = await f.feed(dec, stream.subarray(at, at + n));
              out.push({ frames: plain(r.frames), error: r.error });
              at += n;
            }
            out.push(await f.end(dec));
            await f.destroyDecoder(dec);
            return out;
          };
          expect(await run(d.framing)).toEqual(await run(oracle));
        }),
        { numRuns: 40, seed: 11 },
      );
    });

    it('batches (plain and compressed) and writeAll agree with the TypeScript codec', async () => {
      const frames = [
        { type: 1, sequence: 2, playerId: 3, payload: new Uint8Array(500) },
        { type: 9, sequence: 0xffffffff, playerId: 0, payload: Uint8Array.from([1, 2, 3]) },
      ];
      for (const compress of [false, true]) {
        const payload = await d.framing.encodeBatch(frames, { compress, level: 6 });
        const back = await d.framing.decodeBatch(payload);
        expect(back.error).toBeNull();
        expect(plain(back.frames)).toEqual(plain(frames));
        const want = await oracle.decodeBatch(payload, { maxDecompressed: 100 });
        expect(await d.framing.decodeBatch(payload, { maxDecompressed: 100 })).toEqual({ frames: [], error: want.error });
        expect(want.error?.code).toBe('batch-too-large');
      }
      const bytes = Uint8Array.from({ length: 52 }, (_, i) => i);
      for (const script of [[5, 'again', 3, 'again', 'again', 20, 100], [10, 0], ['again'], []] as Array<Array<number | 'again'>>) {
        const got = await d.framing.writeAll(bytes, script);
        const want = await oracle.writeAll(bytes, script);
        expect({ ...got, written: Array.from(got.written) }, JSON.stringify(script)).toEqual({ ...want, written: Array.from(want.written) });
      }
    });

    it('bad arguments reject with TargetError invalid, and the driver stays usable', async () => {
      const bad: Array<[string, () => Promise<unknown>]> = [
        ['unknown decoder', () => d.framing.feed(987654, new Uint8Array(1))],
        ['maxSize 11', () => d.framing.createDecoder({ maxSize: 11 })],
        ['maxSize 65536', () => d.framing.createDecoder({ maxSize: 65536 })],
        ['a type out of range', () => d.framing.createDecoder({ types: [1, 70000] })],
        ['a frame field out of range', () => d.framing.encode([{ type: 1, sequence: -1, playerId: 0, payload: new Uint8Array(0) }])],
        ['a payload too large for the u16 size', () => d.framing.encode([{ type: 1, sequence: 0, playerId: 0, payload: new Uint8Array(65524) }])],
        ['a nested batch', () => d.framing.encodeBatch([{ type: 0xffff, sequence: 0, playerId: 0, payload: new Uint8Array(0) }])],
        ['level 10', () => d.framing.encodeBatch([], { level: 10 })],
        ['maxDecompressed 2^40', () => d.framing.decodeBatch(new Uint8Array(7), { maxDecompressed: 2 ** 40 })],
        ['a negative write script entry', () => d.framing.writeAll(new Uint8Array(3), [-1])],
      ];
      for (const [what, call] of bad) {
        await expect(call(), what).rejects.toMatchObject({ name: 'TargetError', code: 'invalid' });
      }
      const dec = await d.framing.createDecoder();
      await d.framing.destroyDecoder(dec);
      await expect(d.framing.end(dec), 'a destroyed decoder').rejects.toMatchObject({ code: 'invalid' });
      await d.reset();
      const again = await d.framing.createDecoder();
      expect((await d.framing.feed(again, await d.framing.encode([{ type: 4, sequence: 5, playerId: 6, payload: new Uint8Array(0) }]))).frames).toHaveLength(1);
    });
  });
}

for (const [name, argv] of drivers) {
  describe(`framing garbage over raw JSON-RPC: ${name}`, () => {
    let c: Raw | undefined;
    afterEach(async () => {
      if (!c) return;
      const code = await c.end();
      expect(code, c.stderr).toBe(0);
      expect(c.stderr).not.toMatch(SANITIZER_REPORT);
      c = undefined;
    });

    it('malformed params are -32602 or -32000 invalid, each with a message naming the problem', async () => {
      c = new Raw(argv());
      const { decoder } = await c.ok('framing.createDecoder');
      const cases: Array<[string, unknown, RegExp]> = [
        ['framing.feed', { decoder, data: 'not base64!' }, /base64/],
        ['framing.feed', { decoder, data: 'abc' }, /base64/],
        ['framing.feed', { decoder, data: 42 }, /data/],
        ['framing.feed', { decoder }, /data/],
        ['framing.feed', { data: '' }, /decoder/],
        ['framing.feed', { decoder: 'one', data: '' }, /decoder/],
        ['framing.feed', { decoder: 1e300, data: '' }, /decoder/],
        ['framing.feed', { decoder: 424242, data: '' }, /decoder/],
        ['framing.feed', { decoder: 1.5, data: '' }, /decoder/],
        ['framing.end', { decoder: -1 }, /decoder/],
        ['framing.destroyDecoder', { decoder: null }, /decoder/],
        ['framing.setMaxSize', { decoder, maxSize: 2 ** 53 }, /maxSize/],
        ['framing.setMaxSize', { decoder, maxSize: '100' }, /maxSize/],
        ['framing.createDecoder', { maxSize: -12 }, /maxSize/],
        ['framing.createDecoder', { maxSize: 1e300 }, /maxSize/],
        ['framing.createDecoder', { types: 'all' }, /types/],
        ['framing.createDecoder', { types: [1, 'x'] }, /types/],
        ['framing.encode', { frames: {} }, /frames/],
        ['framing.encode', {}, /frames/],
        ['framing.encode', { frames: [7] }, /frames/],
        ['framing.encode', { frames: [{ type: 1, sequence: 0, playerId: 0, payload: '%%%%' }] }, /payload|base64/],
        ['framing.encode', { frames: [{ type: 1, sequence: 0, playerId: 2 ** 32, payload: '' }] }, /playerId|field/],
        ['framing.encode', { frames: [{ type: 1, sequence: 0, payload: '' }] }, /playerId/],
        ['framing.encodeBatch', { frames: [], compress: 'yes' }, /compress/],
        ['framing.decodeBatch', { data: '', maxCount: 70000 }, /maxCount/],
        ['framing.decodeBatch', { data: '', maxDecompressed: 2 ** 33 }, /maxDecompressed/],
        ['framing.decodeBatch', { data: '====' }, /base64/],
        ['framing.writeAll', { data: '', script: 'again' }, /script/],
        ['framing.writeAll', { data: '', script: [{}] }, /script/],
        ['framing.writeAll', { data: '', script: [1e300] }, /script/],
        ['framing.writeAll', { script: [] }, /data/],
      ];
      for (const [method, params, message] of cases) {
        const r = await c.call(method, params);
        const what = `${method} ${JSON.stringify(params)} -> ${JSON.stringify(r)}`;
        expect(r.error, what).toBeDefined();
        expect(r.error!.code === -32602 || (r.error!.code === -32000 && r.error!.data?.code === 'invalid'), what).toBe(true);
        expect(r.error!.message, what).toMatch(message);
      }
      // Codec errors are data, not JSON-RPC errors; the decoder closes after a fatal one.
      const bad = await c.ok('framing.feed', { decoder, data: b64([5, 0, 1, 0]) });
      expect(bad).toEqual({ frames: [], error: { code: 'size-too-small', offset: 0, size: 5 } });
      expect((await c.ok('framing.feed', { decoder, data: '' })).error).toMatchObject({ code: 'closed', offset: 0 });
      expect((await c.ok('framing.decodeBatch', { data: b64([2, 0, 0, 0, 0, 0, 0]) })).error).toMatchObject({ code: 'batch-bad-flags' });
      // Still alive and well.
      expect((await c.ok('info')).capabilities).toContain('framing');
    });

    it('random params (any JSON, near-miss shapes) always get a result or -32602 / -32000 invalid, never a crash', async () => {
      c = new Raw(argv());
      const { decoder } = await c.ok('framing.createDecoder');
      const methods = ['framing.createDecoder', 'framing.feed', 'framing.setMaxSize', 'framing.end', 'framing.destroyDecoder', 'framing.encode', 'framing.encodeBatch', 'framing.decodeBatch', 'framing.writeAll'];
      const value = fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.constantFrom(decoder, 0, -1, 2 ** 53, 1e308, 0.5, '', '====', 'AAAA', 'again', [], [1, 'again'], [{}], null),
        fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64')),
      );
      const keys = fc.constantFrom('decoder', 'data', 'maxSize', 'types', 'frames', 'compress', 'level', 'maxDecompressed', 'maxCount', 'script', 'payload');
      const frame = fc.record({ type: value, sequence: value, playerId: value, payload: value }, { requiredKeys: [] });
      const params = fc.oneof(fc.dictionary(keys, value, { maxKeys: 4 }), fc.record({ frames: fc.array(frame, { maxLength: 3 }) }));
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...methods), params, async (method, p) => {
          const r = await c!.call(method, p);
          if (r.error) {
            const ok = r.error.code === -32602 || (r.error.code === -32000 && r.error.data?.code === 'invalid');
            expect(ok, `${method} ${JSON.stringify(p)} -> ${JSON.stringify(r.error)}`).toBe(true);
            expect(r.error.message.length).toBeGreaterThan(5);
          } else {
            expect(typeof r.result, `${method} ${JSON.stringify(p)}`).toBe('object');
          }
        }),
        { numRuns: 400, seed: 17 },
      );
      expect((await c.ok('info')).capabilities).toContain('framing');
    });

    it('a big chunk, an empty one and a wide-open batch limit are served', async () => {
      c = new Raw(argv());
      const frames = Array.from({ length: 40 }, (_, i) => ({ type: i, sequence: i, playerId: i, payload: b64(new Uint8Array(60_000).fill(i)) }));
      const { data } = await c.ok('framing.encode', { frames });
      expect(Buffer.from(data, 'base64').length).toBe(40 * 60_012);
      const { decoder } = await c.ok('framing.createDecoder');
      expect(await c.ok('framing.feed', { decoder, data: '' })).toEqual({ frames: [], error: null });
      const r = await c.ok('framing.feed', { decoder, data });
      expect(r.error).toBeNull();
      expect(r.frames.map((f: { payload: string }) => Buffer.from(f.payload, 'base64').length)).toEqual(Array(40).fill(60_000));
      // A batch that states 4 GiB - 1 uncompressed but holds nothing: refused by its size, not inflated.
      const liar = b64([1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x78, 0x9c]);
      expect((await c.ok('framing.decodeBatch', { data: liar, maxDecompressed: 0xffffffff })).error).not.toBeNull();
    });
  });
}

describe('framing limits of the native driver', () => {
  it(`at most 65536 live decoders; beyond that createDecoder is invalid until some are destroyed`, async () => {
    const c = new Raw([driverPath()]);
    const n = 65536;
    const answers = await Promise.all(Array.from({ length: n + 1 }, () => c.call('framing.createDecoder', {})));
    expect(answers.slice(0, n).every((r) => typeof r.result?.decoder === 'number')).toBe(true);
    expect(answers[n].error?.data?.code).toBe('invalid');
    expect(answers[n].error?.message).toMatch(/too many decoders/);
    await c.ok('framing.destroyDecoder', { decoder: answers[0].result.decoder });
    expect(typeof (await c.ok('framing.createDecoder')).decoder).toBe('number');
    await c.ok('reset');
    expect((await c.ok('framing.createDecoder')).decoder).toBe(1);
    expect(await c.end()).toBe(0);
    expect(c.stderr).not.toMatch(SANITIZER_REPORT);
  }, 60_000);
});

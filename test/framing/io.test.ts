// Anchors 13 and 14 of conformance-anchors.md ("Length-prefixed framing"): the write side (a writer that
// accepts 0 bytes is an error, a would-block writer resumes: CP-FRAME-011) and the same framing properties
// over real transports (TCP loopback, a Unix domain socket, an OS pipe through a child process, and the
// native decoder).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  FrameDecoder,
  FramingError,
  decode,
  encode,
  writeAll,
  writeAllAsync,
  type Frame,
  type StreamDecoder,
  type Writer,
} from '../../reference/src/framing/index.ts';
import { NativeFrameDecoder, nativeFramingStatus } from '../../reference/src/framing/native.ts';
import { chunkingArb, cut, framesArb, plainFrames } from '../../fuzz/framing/arbitraries.ts';

/** A writer following a script: take up to n bytes, or say 'again' (would block). Cycles. */
type Step = { take: number } | 'again';
const stepArb = fc.oneof({ weight: 3, arbitrary: fc.record({ take: fc.integer({ min: 1, max: 50 }) }) }, { weight: 1, arbitrary: fc.constant('again' as const) });

function scriptedWriter(script: Step[], sink: number[]): Writer {
  let i = 0;
  return (bytes) => {
    const s = script[i++ % script.length];
    if (s === 'again') return 'again';
    const n = Math.min(s.take, bytes.length);
    for (let k = 0; k < n; k++) sink.push(bytes[k]);
    return n;
  };
}

describe('anchor 13: the write side (CP-FRAME-011)', () => {
  test('anchor 13: a partial, would-block writer resumes where it stopped: every byte once, in order', () => {
    fc.assert(
      fc.property(framesArb({ maxFrames: 6, maxPayload: 120 }), fc.array(stepArb, { minLength: 1, maxLength: 10 }), (frames, script) => {
        fc.pre(script.some((s) => s !== 'again'));
        const bytes = encode(frames);
        const sink: number[] = [];
        const w = scriptedWriter(script, sink);
        let progress = writeAll(w, bytes);
        let resumes = 0;
        while (!progress.done) {
          expect(progress.offset).toBe(sink.length); // resumes exactly where it stopped
          progress = writeAll(w, bytes, progress.offset);
          resumes++;
          expect(resumes).toBeLessThan(10_000);
        }
        expect(progress.offset).toBe(bytes.length);
        expect(Uint8Array.from(sink)).toEqual(bytes);
        const back = decode(Uint8Array.from(sink));
        expect(back.error).toBeNull();
        expect(plainFrames(back.frames)).toEqual(plainFrames(frames));
      }),
      { numRuns: 300 },
    );
  });

  test('anchor 13: a writer that accepts 0 bytes is the error write-zero (never a spin), at the bytes written so far', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 5 }), (bytes, takes) => {
        let calls = 0;
        let written = 0;
        const w: Writer = (b) => {
          calls++;
          if (calls > takes.length) return 0;
          const n = Math.min(takes[calls - 1], b.length);
          written += n;
          return n;
        };
        let caught: unknown;
        let result;
        try {
          result = writeAll(w, bytes);
        } catch (e) {
          caught = e;
        }
        if (written === bytes.length) {
          expect(result?.done).toBe(true);
        } else {
          expect(caught).toBeInstanceOf(FramingError);
          expect((caught as FramingError).toJSON()).toEqual({ code: 'write-zero', offset: written });
          expect(calls).toBe(takes.length + 1);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('anchor 13: a writer that claims more than it was given, or a negative count, is write-invalid', () => {
    const bytes = new Uint8Array(10);
    expect(() => writeAll(() => 11, bytes)).toThrow(expect.objectContaining({ code: 'write-invalid', offset: 0 }));
    expect(() => writeAll(() => -1, bytes)).toThrow(expect.objectContaining({ code: 'write-invalid' }));
    expect(() => writeAll(() => 1.5, bytes)).toThrow(expect.objectContaining({ code: 'write-invalid' }));
    expect(writeAll(() => 0, new Uint8Array(0))).toEqual({ done: true, offset: 0 });
  });

  test('anchor 13: writeAllAsync waits for writability after "again" and completes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.array(stepArb, { minLength: 1, maxLength: 8 }), async (bytes, script) => {
        fc.pre(script.some((s) => s !== 'again'));
        const sink: number[] = [];
        let waits = 0;
        const n = await writeAllAsync(scriptedWriter(script, sink), bytes, async () => {
          waits++;
          await new Promise<void>((r) => setImmediate(r));
        });
        expect(n).toBe(bytes.length);
        expect(Uint8Array.from(sink)).toEqual(bytes);
        if (!script.includes('again')) expect(waits).toBe(0);
      }),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Anchor 14: the same property across transports.

interface Transport {
  name: string;
  /** Sends the chunks (one write each, through writeAllAsync) and resolves with the decoded frames. */
  roundtrip(chunks: Uint8Array[], make: () => StreamDecoder): Promise<Frame[]>;
  close(): Promise<void>;
}

/** Decodes everything a readable delivers until it ends. */
function collect(readable: Readable, d: StreamDecoder, expectBytes: number): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const frames: Frame[] = [];
    let got = 0;
    const onData = (chunk: Buffer) => {
      const r = d.feed(chunk);
      if (r.error) return reject(r.error);
      frames.push(...r.frames);
      got += chunk.length;
      if (got >= expectBytes) finish();
    };
    const finish = () => {
      readable.off('data', onData);
      const e = d.end();
      if (e) reject(e);
      else resolve(frames);
    };
    if (expectBytes === 0) return finish();
    readable.on('data', onData);
  });
}

/** A Writer over a net.Socket / Writable: takes everything, says 'again' after backpressure until drain. */
async function sendChunks(sock: NodeJS.WritableStream & { write(b: Uint8Array): boolean }, chunks: Uint8Array[]): Promise<void> {
  let blocked = false;
  const writer: Writer = (b) => {
    if (blocked) return 'again';
    blocked = !sock.write(b);
    return b.length;
  };
  for (const c of chunks) {
    await writeAllAsync(writer, c, async () => {
      await once(sock, 'drain');
      blocked = false;
    });
  }
}

async function socketTransport(name: string, listenArg: number | string): Promise<Transport> {
  const pending: ((s: net.Socket) => void)[] = [];
  const server = net.createServer((s) => pending.shift()?.(s));
  server.listen(listenArg);
  await once(server, 'listening');
  const address = server.address();
  const connectTo = typeof address === 'string' ? { path: address } : { port: (address as net.AddressInfo).port, host: '127.0.0.1' };
  return {
    name,
    async roundtrip(chunks, make) {
      const accepted = new Promise<net.Socket>((r) => pending.push(r));
      const client = net.connect(connectTo);
      client.setNoDelay(true);
      await once(client, 'connect');
      const server = await accepted;
      const total = chunks.reduce((n, c) => n + c.length, 0);
      const result = collect(server, make(), total);
      await sendChunks(client, chunks);
      const frames = await result;
      client.destroy();
      server.destroy();
      return frames;
    },
    async close() {
      server.close();
      await once(server, 'close');
    },
  };
}

function pipeTransport(): Transport {
  // An OS pipe both ways: bytes go through `cat` (stdin pipe -> stdout pipe).
  let child: ChildProcessWithoutNullStreams | undefined;
  const start = () => {
    child = spawn('cat', [], { stdio: 'pipe' });
    return child;
  };
  return {
    name: 'os pipe (through cat)',
    async roundtrip(chunks, make) {
      const c = child ?? start();
      const total = chunks.reduce((n, x) => n + x.length, 0);
      const result = collect(c.stdout, make(), total);
      await sendChunks(c.stdin, chunks);
      return result;
    },
    async close() {
      if (child) {
        child.stdin.end();
        await once(child, 'exit');
      }
    },
  };
}

const native = nativeFramingStatus();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'cpspec-framing-'));
const transports: Transport[] = [];

describe('anchor 14: the same framing property across transports', () => {
  beforeAll(async () => {
    transports.push(await socketTransport('tcp loopback', 0));
    if (process.platform !== 'win32') transports.push(await socketTransport('unix domain socket', path.join(tmp, 'framing.sock')));
    if (process.platform !== 'win32') transports.push(pipeTransport());
  });
  afterAll(async () => {
    for (const t of transports) await t.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const decoders: { name: string; make: () => StreamDecoder; skip: string | null }[] = [
    { name: 'TS decoder', make: () => new FrameDecoder(), skip: null },
    { name: 'native decoder', make: () => new NativeFrameDecoder(), skip: native.available ? null : native.reason },
  ];

  test('anchor 14: in memory, TS and native decoders: any chunking yields the frames', () => {
    for (const d of decoders) {
      if (d.skip) {
        console.warn(`anchor 14 (in memory): skipping the native decoder: ${d.skip}`);
        continue;
      }
      fc.assert(
        fc.property(framesArb({ maxFrames: 10, maxPayload: 200 }), chunkingArb(), (frames, chunking) => {
          const dec = d.make();
          const got = cut(encode(frames), chunking).flatMap((c) => {
            const r = dec.feed(c);
            expect(r.error).toBeNull();
            return r.frames;
          });
          expect(dec.end()).toBeNull();
          expect(plainFrames(got)).toEqual(plainFrames(frames));
        }),
        { numRuns: 200 },
      );
    }
  });

  for (const name of ['tcp loopback', 'unix domain socket', 'os pipe (through cat)']) {
    test(`anchor 14: over ${name}: any frames, any write chunking, TS and native decoders`, async () => {
      const t = transports.find((x) => x.name === name);
      if (!t) {
        console.warn(`anchor 14: ${name} is not available on ${process.platform}`);
        return;
      }
      for (const d of decoders) {
        if (d.skip) {
          console.warn(`anchor 14 (${name}): skipping the native decoder: ${d.skip}`);
          continue;
        }
        await fc.assert(
          fc.asyncProperty(framesArb({ maxFrames: 30, maxPayload: 2000 }), chunkingArb(700), async (frames, chunking) => {
            const got = await t.roundtrip(cut(encode(frames), chunking), d.make);
            expect(plainFrames(got)).toEqual(plainFrames(frames));
          }),
          { numRuns: 15 },
        );
      }
    });
  }
});

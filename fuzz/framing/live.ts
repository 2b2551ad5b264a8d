// Framing fuzz against a live endpoint: random frame streams, written with random segmentation (and small
// pauses), to a TCP echo endpoint; what comes back must decode to exactly the frames sent, in order, with
// nothing left over. This is the client side of the server profile: point it at any echo service that
// speaks the seeds' framing (loopback in our tests).
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { FrameDecoder } from '../../reference/src/framing/decoder.ts';
import { encode } from '../../reference/src/framing/encoder.ts';
import type { Frame } from '../../reference/src/framing/wire.ts';
import { chunkingArb, cut, framesArb, type Chunking } from './arbitraries.ts';

export interface EchoScenario {
  frames: Frame[];
  chunking: Chunking;
  /** Pause (ms) after every nth chunk, to let the peer see separate segments. */
  pauseEvery: number;
}

export const echoScenarioArb: fc.Arbitrary<EchoScenario> = fc.record({
  frames: framesArb({ minFrames: 1, maxFrames: 16, maxPayload: 512 }),
  chunking: chunkingArb(256),
  pauseEvery: fc.integer({ min: 0, max: 8 }),
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function plain(f: Frame): string {
  return `type ${f.type} seq ${f.sequence} player ${f.playerId} payload ${f.payload.length} B`;
}

/**
 * Sends one scenario to host:port and checks the echo. Rejects with a description of the first difference.
 * The echo is complete when every byte is back; it is declared incomplete when nothing arrives for
 * `idleMs` after the last write or the last echoed byte (so a lossy endpoint fails fast and shrinks fast),
 * and at `timeoutMs` in any case.
 */
export async function echoOnce(host: string, port: number, s: EchoScenario, timeoutMs = 5000, idleMs = 300): Promise<void> {
  const bytes = encode(s.frames);
  const socket: Socket = connect({ host, port });
  socket.setNoDelay(true);
  const decoder = new FrameDecoder();
  let writesDone = false;
  const got: Frame[] = [];
  let failure: Error | undefined;
  let received = 0;
  let idle: NodeJS.Timeout | undefined;
  let armIdle: () => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    const incomplete = (after: string) => new Error(`echo incomplete (${after}): ${received} of ${bytes.length} bytes, ${got.length} of ${s.frames.length} frames back`);
    const timer = setTimeout(() => reject(incomplete(`${timeoutMs} ms`)), timeoutMs);
    armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        clearTimeout(timer);
        reject(incomplete(`nothing for ${idleMs} ms`));
      }, idleMs);
    };
    socket.on('data', (chunk: Buffer) => {
      if (writesDone) armIdle();
      received += chunk.length;
      const r = decoder.feed(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      got.push(...r.frames.map((f) => ({ ...f, payload: f.payload.slice() })));
      if (r.error) failure ??= new Error(`the echo did not decode: ${r.error.code} at offset ${r.error.offset}`);
      if (failure || received >= bytes.length) {
        clearTimeout(timer);
        clearTimeout(idle);
        resolve();
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      clearTimeout(idle);
      reject(new Error(`connection to ${host}:${port} failed: ${e.message}`));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      clearTimeout(idle);
      if (received < bytes.length) reject(new Error(`the endpoint closed after ${received} of ${bytes.length} bytes`));
      else resolve();
    });
  });
  done.catch(() => undefined); // awaited below; this only keeps an early failure from being unhandled
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const chunks = cut(bytes, s.chunking);
    for (let i = 0; i < chunks.length; i++) {
      if (!socket.write(chunks[i])) await new Promise((r) => socket.once('drain', r));
      if (s.pauseEvery > 0 && i % s.pauseEvery === s.pauseEvery - 1) await sleep(1);
    }
    writesDone = true;
    if (received < bytes.length) armIdle();
    await done;
  } finally {
    clearTimeout(idle);
    socket.destroy();
  }
  if (failure) throw failure;
  if (received > bytes.length) throw new Error(`the endpoint echoed ${received} bytes for ${bytes.length} sent`);
  if (got.length !== s.frames.length) throw new Error(`${got.length} frames came back for ${s.frames.length} sent`);
  for (let i = 0; i < got.length; i++) {
    const a = got[i];
    const b = s.frames[i];
    const same = a.type === b.type && a.sequence === b.sequence && a.playerId === b.playerId && Buffer.compare(Buffer.from(a.payload), Buffer.from(b.payload)) === 0;
    if (!same) throw new Error(`frame ${i} came back as (${plain(a)}), sent (${plain(b)})`);
  }
}

export interface EchoFuzzResult {
  runs: number;
  failed: boolean;
  seed: number;
  error?: string;
  counterexample?: EchoScenario;
  path?: string;
}

/** Fuzzes an echo endpoint; a failure is shrunk to a small scenario. */
export async function fuzzEcho(host: string, port: number, o: { runs?: number; timeMs?: number; seed?: number; path?: string } = {}): Promise<EchoFuzzResult> {
  const seed = o.seed ?? (Date.now() ^ Math.floor(Math.random() * 0x7fffffff));
  let runs = 0;
  const params: fc.Parameters<[EchoScenario]> = { seed, numRuns: o.runs ?? (o.timeMs !== undefined ? Number.MAX_SAFE_INTEGER : 100) };
  if (o.timeMs !== undefined) params.interruptAfterTimeLimit = o.timeMs;
  if (o.path !== undefined) params.path = o.path;
  const details = await fc.check(
    fc.asyncProperty(echoScenarioArb, async (s) => {
      runs++;
      await echoOnce(host, port, s);
    }),
    params,
  );
  if (!details.failed) return { runs, failed: false, seed };
  return {
    runs,
    failed: true,
    seed: details.seed,
    path: details.counterexamplePath ?? undefined,
    error: details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance),
    counterexample: details.counterexample?.[0],
  };
}

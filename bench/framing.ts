// npm run bench:framing (node bench/framing.ts) — decode throughput of the framing codec.
//
// For 64 B, 1 KiB and 16 KiB payloads, one stream of frames cut into random chunks (1..8192 bytes, seeded),
// decoded by:
//   ts views     FrameDecoder (frames wholly inside a chunk are views of it; split frames: one copy)
//   ts copy      FrameDecoder { copy: true } (every payload copied once)
//   naive        a decoder that concatenates its buffer with every chunk (below), for comparison
//   native       the C++ decoder over the whole pre-chunked list inside C++ (addon framing.benchDecode, or the
//                cpspec-bench-framing binary when the addon lacks the binding): no N-API crossing per chunk
//   native copy  the same, each payload copied into an owning frame
//   native napi  NativeFrameDecoder from JS, chunk by chunk (N-API call + JS frame objects per frame)
// MB/s counts stream bytes (headers included). Targets at 1 KiB: ts views >= 300 MB/s, native >= 1500 MB/s
// (printed as PASS/MISS, never asserted).
//
// usage: node bench/framing.ts [--json] [--quick]
import { spawnSync } from 'node:child_process';
import { FrameDecoder, encode, type Frame } from '../reference/src/framing/index.ts';
import { NativeFrameDecoder, nativeBenchDecode, nativeFramingStatus } from '../reference/src/framing/native.ts';
import { locateNativeBinary } from './lib.ts';

const args = process.argv.slice(2);
for (const a of args) {
  if (a !== '--json' && a !== '--quick') {
    console.error('usage: node bench/framing.ts [--json] [--quick]');
    process.exit(2);
  }
}
const JSON_OUT = args.includes('--json');
const QUICK = args.includes('--quick');
const BUDGET_S = QUICK ? 0.15 : 0.6;
const STREAM_BYTES = QUICK ? 4 << 20 : 16 << 20;
const PAYLOADS = [64, 1024, 16384];
const TARGET_TS = 300;
const TARGET_NATIVE = 1500;

function log(msg: string): void {
  process.stderr.write(`bench:framing: ${msg}\n`);
}

// A small seeded PRNG (mulberry32), so every run decodes the same streams.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Stream {
  bytes: Uint8Array;
  chunks: Uint8Array[];
  frames: number;
}

function makeStream(payload: number): Stream {
  const r = rng(1234 + payload);
  const frames: Frame[] = [];
  let total = 0;
  for (let seq = 0; total < STREAM_BYTES; seq++) {
    const p = new Uint8Array(payload);
    for (let i = 0; i < payload; i += 97) p[i] = (r() * 256) | 0;
    frames.push({ type: 1 + ((r() * 8) | 0), sequence: seq, playerId: 42, payload: p });
    total += 12 + payload;
  }
  const bytes = encode(frames);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(1 + ((r() * 8192) | 0), bytes.length - at);
    chunks.push(bytes.subarray(at, at + n));
    at += n;
  }
  return { bytes, chunks, frames: frames.length };
}

/** The naive decoder: concatenates what it holds with every chunk, then cuts frames off the front. */
class NaiveDecoder {
  buf: Buffer = Buffer.alloc(0);
  feed(chunk: Uint8Array): Frame[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    while (this.buf.length >= 12) {
      const size = this.buf.readUInt16LE(0);
      if (size < 12) throw new Error('size too small');
      if (this.buf.length < size) break;
      frames.push({ type: this.buf.readUInt16LE(2), sequence: this.buf.readUInt32LE(4), playerId: this.buf.readUInt32LE(8), payload: this.buf.subarray(12, size) });
      this.buf = this.buf.subarray(size);
    }
    return frames;
  }
}

let sink = 0;
function consume(frames: Frame[]): number {
  for (const f of frames) sink += f.payload.length + f.sequence + (f.payload.length > 0 ? f.payload[f.payload.length - 1] : 0);
  return frames.length;
}

type Decode = (s: Stream) => number; // returns the frame count

const decoders: Record<string, Decode> = {
  'ts views': (s) => {
    const d = new FrameDecoder();
    let n = 0;
    for (const c of s.chunks) {
      const r = d.feed(c);
      if (r.error) throw r.error;
      n += consume(r.frames);
    }
    if (d.end()) throw new Error('truncated');
    return n;
  },
  'ts copy': (s) => {
    const d = new FrameDecoder({ copy: true });
    let n = 0;
    for (const c of s.chunks) n += consume(d.feed(c).frames);
    return n;
  },
  naive: (s) => {
    const d = new NaiveDecoder();
    let n = 0;
    for (const c of s.chunks) n += consume(d.feed(c));
    return n;
  },
  'native napi': (s) => {
    const d = new NativeFrameDecoder();
    let n = 0;
    for (const c of s.chunks) n += consume(d.feed(c).frames);
    return n;
  },
};

/** Runs `decode` until the budget is spent (after one warm-up run); MB/s of stream bytes. */
function measure(s: Stream, decode: Decode, budget = BUDGET_S): number {
  if (decode(s) !== s.frames) throw new Error('wrong frame count');
  let reps = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    if (decode(s) !== s.frames) throw new Error('wrong frame count');
    reps++;
    elapsed = (performance.now() - t0) / 1000;
  } while (elapsed < budget);
  return (s.bytes.length * reps) / elapsed / 1e6;
}

/** The C++ decoder inside C++ through the binding: calibrates reps to the budget. */
function measureNativeBinding(s: Stream, copy: boolean): number {
  nativeBenchDecode(s.chunks, 1, { copy }); // warm up
  let reps = 1;
  for (;;) {
    const r = nativeBenchDecode(s.chunks, reps, { copy });
    if (r.frames !== s.frames * reps) throw new Error('wrong frame count (native)');
    if (r.seconds >= BUDGET_S || reps >= 1 << 20) return r.bytes / r.seconds / 1e6;
    reps = Math.max(reps * 2, Math.ceil((reps * BUDGET_S) / Math.max(r.seconds, 1e-6)));
  }
}

/** Fallback: the cpspec-bench-framing binary (same streams' shape, its own PRNG). */
function measureNativeBinary(): Map<string, number> | string {
  let bin: string;
  try {
    bin = locateNativeBinary({ target: 'cpspec-bench-framing', envVar: 'CPSPEC_BENCH_FRAMING', label: 'bench:framing' });
  } catch (e) {
    return (e as Error).message;
  }
  const r = spawnSync(bin, ['--json', '--seconds', String(BUDGET_S)], { encoding: 'utf8' });
  if (r.status !== 0) return `${bin} failed: ${r.stderr}`;
  const rows = JSON.parse(r.stdout) as { payload: number; mode: string; mbps: number }[];
  return new Map(rows.map((x) => [`${x.payload}/${x.mode}`, x.mbps]));
}

interface Row {
  payload: number;
  frames: number;
  chunks: number;
  mbps: Record<string, number | null>;
}

function main(): void {
  const native = nativeFramingStatus();
  let binary: Map<string, number> | string | null = null;
  if (!native.available) {
    log(`the addon has no framing binding (${native.reason}); native rows come from cpspec-bench-framing`);
    binary = measureNativeBinary();
    if (typeof binary === 'string') log(`native rows unavailable: ${binary}`);
  }
  const rows: Row[] = [];
  for (const payload of PAYLOADS) {
    const s = makeStream(payload);
    log(`${payload} B payloads: ${s.frames} frames, ${s.chunks.length} chunks, ${(s.bytes.length / 1e6).toFixed(1)} MB`);
    const mbps: Record<string, number | null> = {};
    mbps['ts views'] = measure(s, decoders['ts views']);
    mbps['ts copy'] = measure(s, decoders['ts copy']);
    mbps.naive = measure(s, decoders.naive);
    if (native.available) {
      mbps.native = measureNativeBinding(s, false);
      mbps['native copy'] = measureNativeBinding(s, true);
      mbps['native napi'] = measure(s, decoders['native napi'], BUDGET_S / 2);
    } else {
      const m = binary instanceof Map ? binary : null;
      mbps.native = m?.get(`${payload}/views`) ?? null;
      mbps['native copy'] = m?.get(`${payload}/copy`) ?? null;
      mbps['native napi'] = null;
    }
    rows.push({ payload, frames: s.frames, chunks: s.chunks.length, mbps });
  }

  const at1k = rows.find((r) => r.payload === 1024)!.mbps;
  const verdict = (v: number | null, target: number) => (v === null ? 'n/a' : v >= target ? 'PASS' : 'MISS');
  const targets = {
    ts: { target: TARGET_TS, mbps: at1k['ts views'], verdict: verdict(at1k['ts views'], TARGET_TS) },
    native: { target: TARGET_NATIVE, mbps: at1k.native, verdict: verdict(at1k.native, TARGET_NATIVE) },
  };
  if (JSON_OUT) {
    console.log(JSON.stringify({ unit: 'MB/s', rows, targets, sink }, null, 2));
    return;
  }
  const cols = ['ts views', 'ts copy', 'naive', 'native', 'native copy', 'native napi'];
  const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(0)).padStart(12);
  const ratio = (a: number | null, b: number | null) => (a === null || b === null ? 'n/a' : `${(a / b).toFixed(1)}x`).padStart(12);
  console.log(`decode throughput, MB/s (stream bytes; random chunks 1..8192 B)`);
  console.log(['payload'.padEnd(8), ...cols.map((c) => c.padStart(12)), 'ts/naive'.padStart(12), 'native/ts'.padStart(12)].join(''));
  for (const r of rows) {
    console.log(
      [String(r.payload).padEnd(8), ...cols.map((c) => fmt(r.mbps[c])), ratio(r.mbps['ts views'], r.mbps.naive), ratio(r.mbps.native, r.mbps['ts views'])].join(''),
    );
  }
  console.log(`target at 1 KiB: ts views >= ${TARGET_TS} MB/s: ${targets.ts.verdict} (${fmt(targets.ts.mbps).trim()})`);
  console.log(`target at 1 KiB: native   >= ${TARGET_NATIVE} MB/s: ${targets.native.verdict} (${fmt(targets.native.mbps).trim()})`);
}

main();

// FRAME: the seeds' game packet over a stream that splits and merges writes (reference/src/framing/
// FRAMING.md), checked through the target's framing member: a codec under test is held to the same
// frames, errors and offsets whatever the chunking.
import assert from 'node:assert/strict';
import type { FramingApi, FramingFault, Target, WireFrame } from '../../reference/src/target.ts';
import type { CaseContext, SpecCase } from '../types.ts';

const HEADER = 12;

function framingOf(t: Target, ctx: CaseContext): FramingApi {
  if (!t.framing) ctx.unsupported('the target has no framing member');
  return t.framing;
}

function frame(type: number, sequence: number, playerId: number, payload: number[] | Uint8Array): WireFrame {
  return { type, sequence, playerId, payload: Uint8Array.from(payload) };
}

/** A deterministic generator, the same on every target. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

function sampleFrames(n: number, seed: number): WireFrame[] {
  const rnd = lcg(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = i % 7 === 0 ? 0 : Math.floor(rnd() * (i % 5 === 0 ? 3000 : 200));
    return frame(Math.floor(rnd() * 1000), (i * 2654435761) >>> 0, Math.floor(rnd() * 2 ** 32) >>> 0, Array.from({ length: len }, () => Math.floor(rnd() * 256)));
  });
}

function plain(f: WireFrame): object {
  return { type: f.type, sequence: f.sequence, playerId: f.playerId, payload: Array.from(f.payload) };
}

function assertFrames(got: WireFrame[], want: WireFrame[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} frames decoded, ${want.length} encoded`);
  for (let i = 0; i < want.length; i++) assert.deepEqual(plain(got[i]), plain(want[i]), `${what}: frame ${i} differs`);
}

/** Feeds `bytes` in chunks of the given sizes (cycled), collecting frames; stops at the first error. */
async function feedAll(f: FramingApi, dec: number, bytes: Uint8Array, sizes: number[]): Promise<{ frames: WireFrame[]; error: FramingFault | null }> {
  const frames: WireFrame[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]);
    const r = await f.feed(dec, bytes.subarray(at, Math.min(bytes.length, at + n)));
    frames.push(...r.frames);
    at += n;
    if (r.error) return { frames, error: r.error };
  }
  return { frames, error: null };
}

function assertFault(e: FramingFault | null, code: string, offset: number, what: string): FramingFault {
  assert.ok(e, `${what}: expected a ${code} error at offset ${offset}, got none`);
  assert.equal(e.code, code, `${what}: error code (offset ${e.offset})`);
  assert.equal(e.offset, offset, `${what}: error offset`);
  return e;
}

/** A header with the given raw size field. */
function rawHeader(size: number, type = 1): Uint8Array {
  const b = new Uint8Array(HEADER);
  new DataView(b.buffer).setUint16(0, size, true);
  new DataView(b.buffer).setUint16(2, type, true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const frameCases: SpecCase[] = [
  {
    id: 'CP-FRAME-001',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const want = sampleFrames(Math.max(20, Math.round(60 * ctx.scale)), 1);
      const bytes = await f.encode(want);
      const rnd = lcg(99);
      const chunkings: Array<[string, number[]]> = [
        ['one byte at a time', [1]],
        ['all at once', [bytes.length]],
        ['header split 5+7', [5, 7, 3, 11, 2, 13]],
        ['random 1..64', Array.from({ length: 97 }, () => 1 + Math.floor(rnd() * 64))],
        ['random 1..4096', Array.from({ length: 31 }, () => 1 + Math.floor(rnd() * 4096))],
      ];
      for (const [name, sizes] of chunkings) {
        const dec = await f.createDecoder();
        const r = await feedAll(f, dec, bytes, sizes);
        assert.equal(r.error, null, `${name}: unexpected error ${JSON.stringify(r.error)}`);
        assertFrames(r.frames, want, name);
        assert.equal(await f.end(dec), null, `${name}: end of stream after whole frames is not an error`);
        await f.destroyDecoder(dec);
      }
    },
  },
  {
    id: 'CP-FRAME-002',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const bytes = await f.encode([frame(7, 1, 2, [])]);
      assert.equal(bytes.length, HEADER, 'a header-only frame is exactly 12 bytes');
      assert.equal(bytes[0] | (bytes[1] << 8), HEADER, 'its size field is 12');
      const dec = await f.createDecoder();
      const r = await f.feed(dec, concat(bytes, bytes));
      assert.equal(r.error, null);
      assertFrames(r.frames, [frame(7, 1, 2, []), frame(7, 1, 2, [])], 'two header-only frames');
    },
  },
  {
    id: 'CP-FRAME-003',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const fr = frame(0x0102, 0x03040506, 0x0708090a, [0xaa, 0xbb]);
      const bytes = await f.encode([fr]);
      assert.deepEqual(Array.from(bytes), [14, 0, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0a, 0x09, 0x08, 0x07, 0xaa, 0xbb], 'u16 size, u16 type, u32 sequence, u32 player id, little-endian');
      const dec = await f.createDecoder();
      const r = await f.feed(dec, Uint8Array.from([14, 0, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0a, 0x09, 0x08, 0x07, 0xaa, 0xbb]));
      assertFrames(r.frames, [fr], 'hand-made little-endian bytes');
    },
  },
  {
    id: 'CP-FRAME-004',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const good = await f.encode([frame(1, 1, 1, [1, 2, 3])]);
      for (const size of [0, 1, 11]) {
        for (const sizes of [[1], [good.length + HEADER]]) {
          const dec = await f.createDecoder();
          const r = await feedAll(f, dec, concat(good, rawHeader(size)), sizes);
          assertFrames(r.frames, [frame(1, 1, 1, [1, 2, 3])], `size ${size}: the frame before the bad header`);
          assertFault(r.error, 'size-too-small', good.length, `size field ${size}, chunks of ${sizes[0]}`);
        }
      }
    },
  },
  {
    id: 'CP-FRAME-005',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const a = frame(1, 1, 1, new Uint8Array(38)); // 50 bytes
      const b = frame(2, 2, 2, new Uint8Array(188)); // 200 bytes
      const ea = await f.encode([a]);
      const eb = await f.encode([b]);
      // Over the limit: an error at the frame's offset.
      let dec = await f.createDecoder({ maxSize: 100 });
      let r = await f.feed(dec, concat(ea, eb));
      assertFrames(r.frames, [a], 'the frame within the limit');
      const e = assertFault(r.error, 'size-too-large', ea.length, 'a 200-byte frame with maxSize 100');
      // The limit can change between frames, applying to the next header.
      dec = await f.createDecoder({ maxSize: 100 });
      r = await f.feed(dec, ea);
      assert.equal(r.error, null);
      await f.setMaxSize(dec, 300);
      r = await f.feed(dec, eb);
      assert.equal(r.error, null, `after raising the limit to 300: ${JSON.stringify(r.error)}`);
      assertFrames(r.frames, [b], 'the 200-byte frame after raising the limit');
      await f.setMaxSize(dec, 40);
      r = await f.feed(dec, ea);
      assertFault(r.error, 'size-too-large', ea.length + eb.length, 'a 50-byte frame after lowering the limit to 40');
      ctx.log(`size-too-large details: ${JSON.stringify(e)}`);
    },
  },
  {
    id: 'CP-FRAME-006',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const whole = await f.encode([frame(1, 1, 1, new Uint8Array(18))]); // 30 bytes
      for (const cut of [5, 12, 20, 29]) {
        const dec = await f.createDecoder();
        const r = await f.feed(dec, concat(whole, whole.subarray(0, cut)));
        assert.equal(r.frames.length, 1, `cut at ${cut}: only the whole frame is delivered`);
        const e = assertFault(await f.end(dec), 'truncated', whole.length, `end of stream ${cut} bytes into a frame`);
        assert.equal(e.dangling, cut, `cut at ${cut}: dangling bytes`);
      }
    },
  },
  {
    id: 'CP-FRAME-007',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const bytes = await f.encode([frame(1, 0, 0, [1]), frame(2, 0, 0, [2]), frame(3, 0, 0, [3])]);
      const dec = await f.createDecoder({ types: [1, 2] });
      const r = await feedAll(f, dec, bytes, [3]);
      assert.deepEqual(r.frames.map((x) => x.type), [1, 2]);
      assertFault(r.error, 'unknown-type', 26, 'frame type 3 with types {1, 2}');
      // Without a registry every type is accepted.
      const open = await f.createDecoder();
      assert.equal((await f.feed(open, bytes)).frames.length, 3);
    },
  },
  {
    id: 'CP-FRAME-008',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const g = await f.encode([frame(1, 1, 1, [1]), frame(1, 2, 1, [2])]);
      const dec = await f.createDecoder();
      const r = await f.feed(dec, concat(g, rawHeader(5), await f.encode([frame(1, 3, 1, [3])])));
      assertFrames(r.frames, [frame(1, 1, 1, [1]), frame(1, 2, 1, [2])], 'frames before the error, from the same chunk');
      assertFault(r.error, 'size-too-small', g.length, 'the bad header');
      const after = await f.feed(dec, await f.encode([frame(1, 4, 1, [4])]));
      assert.equal(after.frames.length, 0, 'a closed decoder delivers nothing more');
      assert.ok(after.error, 'feeding a decoder after a fatal error is an error');
      assert.equal(after.error?.code, 'closed');
    },
  },
  {
    id: 'CP-FRAME-009',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const frames = sampleFrames(12, 5);
      for (const compress of [false, true]) {
        const payload = await f.encodeBatch(frames, { compress });
        const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        assert.equal(view.getUint16(1, true), frames.length, 'the batch states its frame count');
        const r = await f.decodeBatch(payload);
        assert.equal(r.error, null, `compress ${compress}: ${JSON.stringify(r.error)}`);
        assertFrames(r.frames, frames, `batch, compress ${compress}`);
        // A count that disagrees with the body is an error, not a silent short or long read.
        const bad = payload.slice();
        new DataView(bad.buffer).setUint16(1, frames.length + 1, true);
        assert.notEqual((await f.decodeBatch(bad)).error, null, `compress ${compress}: a wrong count must be rejected`);
      }
      // A compression bomb: 60 000 zero bytes compress to a few hundred. Refused when its stated size is
      // over the limit, before anything is inflated...
      const bomb = await f.encodeBatch([frame(1, 0, 0, new Uint8Array(60_000))], { compress: true });
      assert.ok(bomb.length < 2000, `the bomb compressed to ${bomb.length} bytes`);
      assertFault((await f.decodeBatch(bomb, { maxDecompressed: 10_000 })).error, 'batch-too-large', 3, 'a bomb over maxDecompressed');
      // ...and when it lies about its size, inflation stops at the stated size.
      const liar = bomb.slice();
      new DataView(liar.buffer).setUint32(3, 100, true);
      const lie = await f.decodeBatch(liar, { maxDecompressed: 10_000 });
      assertFault(lie.error, 'batch-size-mismatch', 7, 'a bomb that states 100 bytes');
    },
  },
  {
    id: 'CP-FRAME-010',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const edges = [0xffffffff, 0, 1, 0x7fffffff, 0x80000000, 0xfffffffe];
      const want = edges.map((s, i) => frame(1, s, 0xffffffff - i, [i]));
      const dec = await f.createDecoder();
      const r = await f.feed(dec, await f.encode(want));
      assertFrames(r.frames, want, 'u32 sequence and player id at the wrap and sign boundaries');
    },
  },
  {
    id: 'CP-FRAME-011',
    async run(t, ctx) {
      const f = framingOf(t, ctx);
      const bytes = await f.encode([frame(1, 1, 1, Array.from({ length: 40 }, (_, i) => i))]); // 52 bytes
      const zero = await f.writeAll(bytes, [10, 0]);
      assert.equal(zero.done, false);
      assertFault(zero.error, 'write-zero', 10, 'a writer that accepts 0 bytes');
      const resumed = await f.writeAll(bytes, [5, 'again', 3, 'again', 'again', 20, 100]);
      assert.equal(resumed.error, null);
      assert.equal(resumed.done, true, 'a would-block writer resumes until everything is written');
      assert.equal(resumed.resumes, 3);
      assert.deepEqual(Array.from(resumed.written), Array.from(bytes), 'the writer received every byte once, in order');
      const blocked = await f.writeAll(bytes, ['again']);
      assert.deepEqual([blocked.done, blocked.offset, blocked.error], [false, 0, null], 'a writer that stays blocked leaves the offset at 0');
    },
  },
];

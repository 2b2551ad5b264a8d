// The streaming frame decoder (FRAMING.md, "Stream decoding"). native/framing/framing.cpp implements the
// same state machine; the differential property (test/framing/differential.test.ts) holds them together.
//
// Copies: a frame that lies wholly inside one fed chunk is returned as a view of that chunk (subarray, no
// copy) unless `copy: true`; a frame split across chunks is assembled once, into memory of its exact payload
// size (one copy). Nothing is ever concatenated: at most one partial frame is held. Payload memory for
// copies and split frames comes from 64 KiB slabs (one allocation per many frames; bench/framing.ts).
import {
  FramingError,
  HEADER_SIZE,
  MAX_FRAME_SIZE,
  isU32,
  typeSet,
  type Frame,
  type TypeRegistry,
} from './wire.ts';

export interface DecoderOptions {
  /** Largest frame accepted, header included: 12..65535 (default 65535). setMaxSize() changes it later. */
  maxSize?: number;
  /** The allowed frame types. Absent: every type is allowed. Snapshotted at construction. */
  types?: TypeRegistry;
  /** When set, every frame must carry this player id (else a fatal 'wrong-player'). */
  playerId?: number;
  /**
   * A frame above maxSize is skipped (its bytes are consumed, never buffered) and reported in
   * FeedResult.discarded instead of closing the decoder. Recovery is possible because the size field is
   * still trusted; sizes below the header always close the decoder.
   */
  discardTooLarge?: boolean;
  /**
   * Copy every payload out of the fed chunks. Default false: frames wholly inside a chunk are views of it,
   * so the caller must not reuse a chunk's memory while its frames are alive (pooled receive buffers: set
   * copy: true). With copy, the whole frames of one chunk share one copied buffer.
   */
  copy?: boolean;
}

export interface FeedResult {
  /** Complete frames, in stream order. */
  frames: Frame[];
  /** A fatal error (the decoder is now closed); the frames before it are in `frames`. */
  error: FramingError | null;
  /** Frames skipped because of discardTooLarge (code 'size-too-large', not fatal). Usually a shared empty array. */
  discarded: readonly FramingError[];
}

/** What every stream decoder offers (FrameDecoder, the native decoder, the fuzzers' deliberately broken one). */
export interface StreamDecoder {
  feed(chunk: Uint8Array): FeedResult;
  end(): FramingError | null;
  setMaxSize(n: number): void;
  readonly closed: boolean;
}

const SLAB_SIZE = 64 * 1024;
const SLAB_MAX_PIECE = 8 * 1024;

const NONE: FramingError[] = [];
Object.freeze(NONE);

export function checkMaxSize(n: unknown, what = 'maxSize'): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < HEADER_SIZE || n > MAX_FRAME_SIZE) {
    throw new RangeError(`${what} must be an integer in ${HEADER_SIZE}..${MAX_FRAME_SIZE}, got ${String(n)}`);
  }
  return n;
}

export class FrameDecoder implements StreamDecoder {
  #maxSize: number;
  readonly #types: Set<number> | null;
  readonly #player: number; // -1: no check
  readonly #discard: boolean;
  readonly #copy: boolean;

  /** Stream offset of the next byte to consume. */
  #pos = 0;
  /** Stream offset of the current (unfinished) frame's header. */
  #start = 0;
  /** Bytes of the current frame received so far; 0 between frames. */
  #have = 0;
  /** The current frame's size field (valid once #have >= 2). */
  #size = 0;
  /** Skipping an oversized frame (discardTooLarge). */
  #skipping = false;
  readonly #hdr = new Uint8Array(HEADER_SIZE);
  #type = 0;
  #sequence = 0;
  #playerId = 0;
  /** Payload of the current split frame (exact size, handed out when complete). */
  #buf: Uint8Array | null = null;
  /** -1 while open; else the offset reported by 'closed' errors. */
  #closedAt = -1;
  /** Slab that copied and assembled payloads are carved from (see #alloc). */
  #slab: Uint8Array | null = null;
  #slabAt = 0;

  constructor(options: DecoderOptions = {}) {
    this.#maxSize = options.maxSize === undefined ? MAX_FRAME_SIZE : checkMaxSize(options.maxSize);
    this.#types = options.types === undefined ? null : typeSet(options.types);
    if (options.playerId !== undefined && !isU32(options.playerId)) {
      throw new RangeError(`playerId must be an integer in 0..4294967295, got ${String(options.playerId)}`);
    }
    this.#player = options.playerId ?? -1;
    this.#discard = options.discardTooLarge === true;
    this.#copy = options.copy === true;
  }

  /** The limit in force for frames whose size field has not been read yet. */
  get maxSize(): number {
    return this.#maxSize;
  }

  /** Changes the limit; it applies to every frame whose 2-byte size field is not complete yet. */
  setMaxSize(n: number): void {
    this.#maxSize = checkMaxSize(n);
  }

  get closed(): boolean {
    return this.#closedAt >= 0;
  }

  /** Bytes consumed from the stream (after a fatal error: the offset of the offending header). */
  get offset(): number {
    return this.#pos;
  }

  /** Bytes of an unfinished frame held in memory (a skipped frame holds none). */
  get buffered(): number {
    return this.#skipping ? 0 : this.#have;
  }

  /** Decodes what `chunk` completes. Never throws on bad input: errors are returned (FeedResult.error). */
  feed(chunk: Uint8Array): FeedResult {
    if (this.#closedAt >= 0) return { frames: [], error: new FramingError('closed', this.#closedAt), discarded: NONE };
    const frames: Frame[] = [];
    let discarded: FramingError[] = NONE;
    const n = chunk.length;
    const base = this.#pos;
    const types = this.#types;
    let p = 0;

    while (p < n) {
      if (this.#have === 0 && n - p >= HEADER_SIZE) {
        // Fast path: a whole header is in this chunk.
        const size = chunk[p] | (chunk[p + 1] << 8);
        if (size < HEADER_SIZE) return this.#fail(frames, discarded, new FramingError('size-too-small', base + p, { size }));
        if (size > this.#maxSize) {
          const err = new FramingError('size-too-large', base + p, { size, maxSize: this.#maxSize });
          if (!this.#discard) return this.#fail(frames, discarded, err);
          if (discarded === NONE) discarded = [];
          discarded.push(err);
          if (n - p >= size) {
            p += size;
            continue;
          }
          this.#start = base + p;
          this.#size = size;
          this.#have = n - p;
          this.#skipping = true;
          p = n;
          break;
        }
        const type = chunk[p + 2] | (chunk[p + 3] << 8);
        if (types !== null && !types.has(type)) return this.#fail(frames, discarded, new FramingError('unknown-type', base + p, { type }));
        const sequence = (chunk[p + 4] | (chunk[p + 5] << 8) | (chunk[p + 6] << 16) | (chunk[p + 7] << 24)) >>> 0;
        const playerId = (chunk[p + 8] | (chunk[p + 9] << 8) | (chunk[p + 10] << 16) | (chunk[p + 11] << 24)) >>> 0;
        if (this.#player >= 0 && playerId !== this.#player) {
          return this.#fail(frames, discarded, new FramingError('wrong-player', base + p, { playerId, expected: this.#player }));
        }
        if (n - p >= size) {
          let payload: Uint8Array;
          if (this.#copy) {
            payload = this.#alloc(size - HEADER_SIZE);
            payload.set(chunk.subarray(p + HEADER_SIZE, p + size));
          } else {
            payload = chunk.subarray(p + HEADER_SIZE, p + size);
          }
          frames.push({ type, sequence, playerId, payload });
          p += size;
          continue;
        }
        // The header is here, the payload is not: start assembling.
        this.#start = base + p;
        this.#size = size;
        this.#type = type;
        this.#sequence = sequence;
        this.#playerId = playerId;
        const buf = this.#alloc(size - HEADER_SIZE);
        buf.set(chunk.subarray(p + HEADER_SIZE, n));
        this.#buf = buf;
        this.#have = n - p;
        p = n;
        break;
      }

      // Slow path: a frame split across chunks, or fewer than 12 bytes left in this chunk.
      if (this.#skipping) {
        const take = Math.min(this.#size - this.#have, n - p);
        this.#have += take;
        p += take;
        if (this.#have === this.#size) {
          this.#have = 0;
          this.#skipping = false;
        }
        continue;
      }
      if (this.#have < HEADER_SIZE) {
        if (this.#have === 0) this.#start = base + p;
        const before = this.#have;
        const take = Math.min(HEADER_SIZE - before, n - p);
        for (let i = 0; i < take; i++) this.#hdr[before + i] = chunk[p + i];
        this.#have = before + take;
        p += take;
        const hdr = this.#hdr;
        if (before < 2 && this.#have >= 2) {
          const size = hdr[0] | (hdr[1] << 8);
          this.#size = size;
          if (size < HEADER_SIZE) return this.#fail(frames, discarded, new FramingError('size-too-small', this.#start, { size }));
          if (size > this.#maxSize) {
            const err = new FramingError('size-too-large', this.#start, { size, maxSize: this.#maxSize });
            if (!this.#discard) return this.#fail(frames, discarded, err);
            if (discarded === NONE) discarded = [];
            discarded.push(err);
            this.#skipping = true; // size > maxSize >= 12 >= #have: bytes remain to skip
            continue;
          }
        }
        if (before < 4 && this.#have >= 4) {
          const type = hdr[2] | (hdr[3] << 8);
          if (types !== null && !types.has(type)) return this.#fail(frames, discarded, new FramingError('unknown-type', this.#start, { type }));
          this.#type = type;
        }
        if (this.#have === HEADER_SIZE) {
          this.#sequence = (hdr[4] | (hdr[5] << 8) | (hdr[6] << 16) | (hdr[7] << 24)) >>> 0;
          const playerId = (hdr[8] | (hdr[9] << 8) | (hdr[10] << 16) | (hdr[11] << 24)) >>> 0;
          if (this.#player >= 0 && playerId !== this.#player) {
            return this.#fail(frames, discarded, new FramingError('wrong-player', this.#start, { playerId, expected: this.#player }));
          }
          this.#playerId = playerId;
          if (this.#size === HEADER_SIZE) {
            frames.push({ type: this.#type, sequence: this.#sequence, playerId, payload: new Uint8Array(0) });
            this.#have = 0;
          } else {
            this.#buf = this.#alloc(this.#size - HEADER_SIZE);
          }
        }
        continue;
      }
      const buf = this.#buf as Uint8Array;
      const take = Math.min(this.#size - this.#have, n - p);
      buf.set(take === n ? chunk : chunk.subarray(p, p + take), this.#have - HEADER_SIZE);
      this.#have += take;
      p += take;
      if (this.#have === this.#size) {
        frames.push({ type: this.#type, sequence: this.#sequence, playerId: this.#playerId, payload: buf });
        this.#buf = null;
        this.#have = 0;
      }
    }
    this.#pos = base + n;
    return { frames, error: null, discarded };
  }

  /**
   * End of stream. Returns null when it fell between frames, else a 'truncated' error (nothing of the
   * unfinished frame is delivered). Either way the decoder is closed afterwards.
   */
  end(): FramingError | null {
    if (this.#closedAt >= 0) return new FramingError('closed', this.#closedAt);
    if (this.#have > 0) {
      const err = new FramingError('truncated', this.#start, { dangling: this.#have });
      this.#close(this.#start);
      return err;
    }
    this.#close(this.#pos);
    return null;
  }

  /**
   * Memory for one payload (copy mode, or a split frame). Small payloads are carved from a shared 64 KiB
   * slab, as Node carves small Buffers from its pool: allocating an ArrayBuffer per frame costs more than
   * copying a kilobyte. A payload keeps its slab alive; payloads above 8 KiB get their own buffer.
   */
  #alloc(n: number): Uint8Array {
    if (n > SLAB_MAX_PIECE) return new Uint8Array(n);
    if (this.#slab === null || this.#slab.length - this.#slabAt < n) {
      this.#slab = new Uint8Array(SLAB_SIZE);
      this.#slabAt = 0;
    }
    const out = this.#slab.subarray(this.#slabAt, this.#slabAt + n);
    this.#slabAt += (n + 7) & ~7;
    return out;
  }

  #close(at: number): void {
    this.#closedAt = at;
    this.#pos = at;
    this.#buf = null;
    this.#have = 0;
    this.#skipping = false;
  }

  #fail(frames: Frame[], discarded: readonly FramingError[], err: FramingError): FeedResult {
    this.#close(err.offset);
    return { frames, error: err, discarded };
  }
}

/** One-shot decoding of a complete stream: feed(bytes) then end(). */
export function decode(bytes: Uint8Array, options?: DecoderOptions): FeedResult {
  const d = new FrameDecoder(options);
  const r = d.feed(bytes);
  if (r.error === null) r.error = d.end();
  return r;
}

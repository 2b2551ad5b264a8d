// Running a Scenario through any StreamDecoder, and the oracle: a whole-buffer model of FRAMING.md's
// decoding rules, written as plainly as possible (no streaming state), that the streaming decoders must
// agree with for every chunking.
import { encode } from '../../reference/src/framing/encoder.ts';
import type { DecoderOptions, StreamDecoder } from '../../reference/src/framing/decoder.ts';
import { HEADER_SIZE, MAX_FRAME_SIZE, readU16, readU32, type Frame, type FramingError, type FramingErrorJSON } from '../../reference/src/framing/wire.ts';
import { corrupt, cut, plainFrames, resolveOptions, type LimitChange, type Scenario } from './arbitraries.ts';

export type PlainFrame = ReturnType<typeof plainFrames>[number];

export interface FeedRecord {
  frames: PlainFrame[];
  error: FramingErrorJSON | null;
  discarded: FramingErrorJSON[];
}

/** Everything a decoder said during one run: per feed() call, then end(). */
export interface Transcript {
  feeds: FeedRecord[];
  end: FramingErrorJSON | null;
}

/** What a run delivered, regardless of how it was split over feed() calls. */
export interface Outcome {
  frames: PlainFrame[];
  discarded: FramingErrorJSON[];
  /** The first fatal error (from a feed or from end()), or null. */
  error: FramingErrorJSON | null;
}

const json = (e: FramingError | null): FramingErrorJSON | null => (e === null ? null : e.toJSON());

export function scenarioBytes(s: Scenario): Uint8Array {
  return corrupt(encode(s.frames), s.frames, s.corruption);
}

/** Limit changes in the order the runner applies them: by chunk, then as listed. */
function orderedLimits(limits: readonly LimitChange[]): LimitChange[] {
  return limits.map((l, i) => ({ l, i })).sort((a, b) => a.l.beforeChunk - b.l.beforeChunk || a.i - b.i).map((x) => x.l);
}

/**
 * Feeds the scenario's bytes chunk by chunk (applying its limit changes before the chunks they name), keeps
 * feeding after a fatal error (every later feed must say 'closed'), then calls end().
 */
export function runScenario(make: (o: DecoderOptions) => StreamDecoder, s: Scenario): Transcript {
  const options = resolveOptions(s.options, s.frames);
  const d = make(options);
  const chunks = cut(scenarioBytes(s), s.chunking);
  const limits = orderedLimits(s.limits);
  const feeds: FeedRecord[] = [];
  chunks.forEach((chunk, i) => {
    for (const l of limits) if (l.beforeChunk === i) d.setMaxSize(l.maxSize);
    const r = d.feed(chunk);
    feeds.push({ frames: plainFrames(r.frames), error: json(r.error), discarded: r.discarded.map((e) => e.toJSON()) });
  });
  return { feeds, end: json(d.end()) };
}

export function outcomeOf(t: Transcript): Outcome {
  const o: Outcome = { frames: [], discarded: [], error: null };
  for (const f of t.feeds) {
    o.frames.push(...f.frames);
    o.discarded.push(...f.discarded);
    if (f.error !== null) {
      o.error = f.error;
      return o;
    }
  }
  o.error = t.end;
  return o;
}

/** The limit in force for a frame whose size field completes at stream byte `index`. */
export function limitSchedule(s: Scenario, initial: number): (index: number) => number {
  const chunks = cut(scenarioBytes(s), s.chunking);
  const ends: number[] = [];
  let at = 0;
  for (const c of chunks) ends.push((at += c.length));
  const limits = orderedLimits(s.limits);
  return (index: number) => {
    let chunk = ends.findIndex((e) => index < e);
    if (chunk < 0) chunk = ends.length;
    let m = initial;
    for (const l of limits) if (l.beforeChunk <= chunk && l.beforeChunk < chunks.length) m = l.maxSize;
    return m;
  };
}

/**
 * The oracle. Walks the whole stream: a frame's size is checked once its 2 size bytes exist, its type once
 * 4 bytes exist, its player id once the 12-byte header exists; a stream that ends inside a frame is
 * 'truncated' with every byte of that frame counted as dangling.
 */
export function modelDecode(bytes: Uint8Array, options: DecoderOptions, limitAt?: (index: number) => number): Outcome {
  const maxSize = options.maxSize ?? MAX_FRAME_SIZE;
  const limit = limitAt ?? (() => maxSize);
  const types = options.types === undefined ? null : new Set(options.types);
  const frames: Frame[] = [];
  const discarded: FramingErrorJSON[] = [];
  const done = (error: FramingErrorJSON | null): Outcome => ({ frames: plainFrames(frames), discarded, error });
  const n = bytes.length;
  let p = 0;
  while (p < n) {
    const rem = n - p;
    const truncated = (): Outcome => done({ code: 'truncated', offset: p, dangling: rem });
    if (rem < 2) return truncated();
    const size = readU16(bytes, p);
    if (size < HEADER_SIZE) return done({ code: 'size-too-small', offset: p, size });
    const lim = limit(p + 1);
    if (size > lim) {
      const e: FramingErrorJSON = { code: 'size-too-large', offset: p, size, maxSize: lim };
      if (!options.discardTooLarge) return done(e);
      discarded.push(e);
      if (rem < size) return truncated();
      p += size;
      continue;
    }
    if (rem < 4) return truncated();
    const type = readU16(bytes, p + 2);
    if (types !== null && !types.has(type)) return done({ code: 'unknown-type', offset: p, type });
    if (rem < HEADER_SIZE) return truncated();
    const playerId = readU32(bytes, p + 8);
    if (options.playerId !== undefined && playerId !== options.playerId) {
      return done({ code: 'wrong-player', offset: p, playerId, expected: options.playerId });
    }
    if (rem < size) return truncated();
    frames.push({ type, sequence: readU32(bytes, p + 4), playerId, payload: bytes.subarray(p + HEADER_SIZE, p + size) });
    p += size;
  }
  return done(null);
}

/** The oracle's outcome for a scenario (with its limit changes). */
export function modelOutcome(s: Scenario): Outcome {
  const options = resolveOptions(s.options, s.frames);
  return modelDecode(scenarioBytes(s), options, limitSchedule(s, options.maxSize ?? MAX_FRAME_SIZE));
}

/** Checks the transcript's own invariants: after a fatal error every feed says 'closed' and yields nothing. */
export function closedAfterError(t: Transcript): boolean {
  let closedAt: number | null = null;
  for (const f of t.feeds) {
    if (closedAt !== null) {
      if (f.frames.length > 0 || f.error?.code !== 'closed' || f.error.offset !== closedAt) return false;
    } else if (f.error !== null) {
      closedAt = f.error.offset;
    }
  }
  if (closedAt !== null) return t.end?.code === 'closed' && t.end.offset === closedAt;
  return true;
}

// ---- batches ---------------------------------------------------------------------------------------------

export type BatchOutcome = { frames: PlainFrame[] } | { error: FramingErrorJSON };

/** Runs a batch decoder, turning a thrown FramingError into an outcome (anything else is rethrown). */
export function batchOutcome(decode: () => Frame[]): BatchOutcome {
  try {
    return { frames: plainFrames(decode()) };
  } catch (e) {
    if (e instanceof Error && e.name === 'FramingError') return { error: (e as FramingError).toJSON() };
    throw e;
  }
}

// The framing suite of `cpspec fuzz`: framing scenarios (arbitraries.ts) run through a target's FramingApi
// (any target: model, native, a driver) and checked against the whole-buffer oracle (harness.ts), plus the
// JSON form of a framing scenario so that a failure is a runnable repro in fuzz/corpus/ like the port and
// socket ones.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { DecoderOptions, StreamDecoder } from '../../reference/src/framing/decoder.ts';
import type { Target } from '../../reference/src/target.ts';
import { MAX_FRAME_SIZE, type FramingErrorJSON } from '../../reference/src/framing/wire.ts';
import { cut, plainFrames, resolveOptions, scenarioArb, type Corruption, type LimitChange, type Scenario } from './arbitraries.ts';
import { closedAfterError, modelOutcome, outcomeOf, runScenario, scenarioBytes, type Transcript } from './harness.ts';

/** A framing scenario as the fuzz suites carry it. `case` is the decoding scenario (bytes as Uint8Array). */
export interface FramingScenario {
  suite: 'framing';
  case: Scenario;
}

/**
 * Scenarios the FramingApi can express: it has maxSize and a type registry, not a player-id check nor
 * discard-too-large (those stay with the decoder-level properties in properties.ts).
 */
export const framingScenarioArb: fc.Arbitrary<FramingScenario> = scenarioArb({ maxFrames: 8, maxPayload: 200 }).map((s) => ({
  suite: 'framing' as const,
  case: { ...s, options: { ...s.options, checkPlayer: false, discardTooLarge: false } },
}));

/** Whether the FramingApi can express the scenario's decoder options. */
export function expressible(s: Scenario): boolean {
  return !s.options.checkPlayer && !s.options.discardTooLarge;
}

const json = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

/** Runs the scenario through the target's FramingApi and checks it against the oracle; throws on a difference. */
export async function runFramingScenario(t: Target, fs: FramingScenario): Promise<void> {
  const f = t.framing;
  if (!f) throw new Error('the target has no framing member (capability framing)');
  const s = fs.case;
  if (!expressible(s)) throw new Error('this scenario checks the player id or discards large frames: the FramingApi cannot express it (replay it with replayOnDecoder)');
  const o = resolveOptions(s.options, s.frames);
  const createOptions: { maxSize?: number; types?: number[] } = {};
  if (o.maxSize !== undefined) createOptions.maxSize = o.maxSize;
  if (o.types !== undefined) createOptions.types = [...o.types];
  const dec = await f.createDecoder(createOptions);
  const chunks = cut(scenarioBytes(s), s.chunking);
  const limits = s.limits.map((l, i) => ({ l, i })).sort((a, b) => a.l.beforeChunk - b.l.beforeChunk || a.i - b.i).map((x) => x.l);
  const transcript: Transcript = { feeds: [], end: null };
  for (let i = 0; i < chunks.length; i++) {
    for (const l of limits) if (l.beforeChunk === i) await f.setMaxSize(dec, l.maxSize);
    const r = await f.feed(dec, chunks[i]);
    transcript.feeds.push({ frames: plainFrames(r.frames), error: json(r.error) as FramingErrorJSON | null, discarded: [] });
  }
  transcript.end = json(await f.end(dec)) as FramingErrorJSON | null;
  await f.destroyDecoder(dec);
  assert.deepEqual(json(outcomeOf(transcript)), json(modelOutcome(s)), 'the decoded frames and the first error differ from the oracle (reference/src/framing/FRAMING.md)');
  assert.ok(closedAfterError(transcript), 'after a fatal error every feed and end() must report closed at the same offset');
}

/** The oracle property on a StreamDecoder directly (any options): what the corpus replays on the codecs. */
export function replayOnDecoder(make: (o: DecoderOptions) => StreamDecoder, s: Scenario): void {
  const t = runScenario(make, s);
  assert.deepEqual(json(outcomeOf(t)), json(modelOutcome(s)), 'the decoded frames and the first error differ from the oracle (reference/src/framing/FRAMING.md)');
  assert.ok(closedAfterError(t), 'after a fatal error every feed and end() must report closed at the same offset');
}

// ---- JSON form -------------------------------------------------------------------------------------------
// Bytes (frame payloads, inserted or garbage bytes) are written as arrays of numbers, so that a repro stays
// readable and editable.

export interface FramingScenarioJSON {
  suite: 'framing';
  case: {
    frames: Array<{ type: number; sequence: number; playerId: number; payload: number[] }>;
    corruption: Record<string, unknown>;
    chunking: number[];
    options: Scenario['options'];
    limits: LimitChange[];
  };
}

export function framingScenarioToJSON(fs: FramingScenario): FramingScenarioJSON {
  const s = fs.case;
  const corruption: Record<string, unknown> = { ...s.corruption };
  if ('bytes' in s.corruption) corruption.bytes = Array.from(s.corruption.bytes);
  return {
    suite: 'framing',
    case: { frames: plainFrames(s.frames), corruption, chunking: [...s.chunking], options: { ...s.options }, limits: s.limits.map((l) => ({ ...l })) },
  };
}

const isByteArray = (x: unknown): x is number[] => Array.isArray(x) && x.every((b) => Number.isInteger(b) && b >= 0 && b <= 255);
const isU = (x: unknown, max: number) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= max;

/** Reads the JSON form back; throws with the first thing that is wrong. */
export function framingScenarioFromJSON(j: unknown): FramingScenario {
  const bad = (why: string): never => {
    throw new Error(`not a framing scenario: ${why}`);
  };
  const o = j as FramingScenarioJSON;
  if (typeof o !== 'object' || o === null || o.suite !== 'framing' || typeof o.case !== 'object' || o.case === null) bad('needs suite "framing" and a case');
  const c = o.case;
  if (!Array.isArray(c.frames)) bad('case.frames must be an array');
  const frames = c.frames.map((f, i) => {
    if (typeof f !== 'object' || f === null || !isU(f.type, 0xffff) || !isU(f.sequence, 0xffffffff) || !isU(f.playerId, 0xffffffff) || !isByteArray(f.payload)) {
      bad(`case.frames[${i}] needs type, sequence, playerId and payload (bytes)`);
    }
    return { type: f.type, sequence: f.sequence, playerId: f.playerId, payload: Uint8Array.from(f.payload) };
  });
  const cj = c.corruption as { kind?: unknown; bytes?: unknown };
  const kinds = ['none', 'size', 'truncate', 'flip', 'insert', 'garbage'];
  if (typeof cj !== 'object' || cj === null || !kinds.includes(String(cj.kind))) bad(`case.corruption.kind must be one of ${kinds.join(', ')}`);
  const corruption = { ...cj } as unknown as Corruption;
  if (cj.kind === 'insert' || cj.kind === 'garbage') {
    if (!isByteArray(cj.bytes)) bad('case.corruption.bytes must be bytes');
    (corruption as { bytes: Uint8Array }).bytes = Uint8Array.from(cj.bytes as number[]);
  }
  if (!Array.isArray(c.chunking) || !c.chunking.every((n) => Number.isInteger(n) && n >= 1)) bad('case.chunking must be an array of positive integers');
  const opt = c.options as Scenario['options'];
  if (typeof opt !== 'object' || opt === null) bad('case.options must be an object');
  if (opt.maxSize !== undefined && !(Number.isInteger(opt.maxSize) && opt.maxSize >= 12 && opt.maxSize <= MAX_FRAME_SIZE)) bad('case.options.maxSize must be 12..65535');
  if (!Array.isArray(c.limits) || !c.limits.every((l) => Number.isInteger(l?.beforeChunk) && Number.isInteger(l?.maxSize))) bad('case.limits must be {beforeChunk, maxSize} objects');
  return {
    suite: 'framing',
    case: {
      frames,
      corruption,
      chunking: [...c.chunking],
      options: { maxSize: opt.maxSize, registry: opt.registry ?? undefined, checkPlayer: Boolean(opt.checkPlayer), discardTooLarge: Boolean(opt.discardTooLarge) },
      limits: c.limits.map((l) => ({ beforeChunk: l.beforeChunk, maxSize: l.maxSize })),
    },
  };
}

/** One line per part of the scenario, for a terminal. */
export function formatFramingScenario(fs: FramingScenario): string {
  const j = framingScenarioToJSON(fs).case;
  return [
    `  frames      ${JSON.stringify(j.frames)}`,
    `  bytes       ${JSON.stringify(Array.from(scenarioBytes(fs.case)))}`,
    `  corruption  ${JSON.stringify(j.corruption)}`,
    `  chunking    ${JSON.stringify(j.chunking)}`,
    `  options     ${JSON.stringify(j.options)}`,
    `  limits      ${JSON.stringify(j.limits)}`,
  ].join('\n');
}


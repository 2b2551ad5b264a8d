// Framing properties that take the decoder under test as a parameter, so that the same property runs
// against the TypeScript decoder, the native one, and the deliberately broken ones (fuzz/framing/broken.ts).
// They assert with node:assert (no test framework needed): a fuzzer can run them with fc.assert directly.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { DecoderOptions, StreamDecoder } from '../../reference/src/framing/decoder.ts';
import { chunkingArb, framesArb, plainFrames, scenarioArb, type FrameArbOptions, type Scenario } from './arbitraries.ts';
import { closedAfterError, modelOutcome, outcomeOf, runScenario } from './harness.ts';

export type MakeDecoder = (options: DecoderOptions) => StreamDecoder;

const NO_OPTIONS = { maxSize: undefined, registry: undefined, checkPlayer: false, discardTooLarge: false };

/** A clean scenario: frames encoded as they are, cut by `chunking`, default options. */
export function cleanScenario(frames: Scenario['frames'], chunking: Scenario['chunking']): Scenario {
  return { frames, corruption: { kind: 'none' }, chunking, options: NO_OPTIONS, limits: [] };
}

/** CP-FRAME-001: for any frames and any chunking the decoder yields exactly those frames, and no error. */
export function roundtripProperty(make: MakeDecoder, frames: FrameArbOptions & { maxFrames?: number } = {}) {
  return fc.property(framesArb(frames), chunkingArb(), (fs, chunking) => {
    const s = cleanScenario(fs, chunking);
    const o = outcomeOf(runScenario(make, s));
    assert.deepEqual(o, { frames: plainFrames(fs), discarded: [], error: null });
  });
}

/**
 * The oracle property: for any scenario (corruptions, options, limit changes, chunking) the decoder delivers
 * what the whole-buffer model says, and is closed after a fatal error.
 */
export function modelProperty(make: MakeDecoder, opts: { withLimits?: boolean; maxFrames?: number; maxPayload?: number } = {}) {
  return fc.property(scenarioArb(opts), (s) => {
    const t = runScenario(make, s);
    assert.deepEqual(outcomeOf(t), modelOutcome(s));
    assert.ok(closedAfterError(t), 'after a fatal error every feed and end() must report closed at the same offset');
  });
}

/** Two decoders say exactly the same thing, feed by feed, for any scenario. */
export function differentialProperty(a: MakeDecoder, b: MakeDecoder, opts: { maxFrames?: number; maxPayload?: number } = {}) {
  return fc.property(scenarioArb(opts), (s) => {
    assert.deepEqual(runScenario(b, s), runScenario(a, s));
  });
}

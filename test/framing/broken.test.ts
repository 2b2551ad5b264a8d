// The properties must catch a real framing bug and shrink it to a small counterexample: run them against
// the deliberately broken decoders of fuzz/framing/broken.ts (off-by-one on the size field).
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { BrokenDecoder, type Bug } from '../../fuzz/framing/broken.ts';
import type { Scenario } from '../../fuzz/framing/arbitraries.ts';
import { scenarioBytes } from '../../fuzz/framing/harness.ts';
import { modelProperty, roundtripProperty } from '../../fuzz/framing/properties.ts';

const SEEDS = [1, 2, 3];

describe('the framing properties catch an off-by-one in the size field', () => {
  test('control: the same naive decoder without the bug passes', () => {
    fc.assert(modelProperty((o) => new BrokenDecoder('none', o), { withLimits: false }), { numRuns: 400 });
    fc.assert(roundtripProperty((o) => new BrokenDecoder('none', o)), { numRuns: 200 });
  });

  const bugs: { bug: Bug; what: string }[] = [
    { bug: 'header-only-rejected', what: 'size <= 12 rejected (header-only frames refused)' },
    { bug: 'payload-one-too-long', what: 'payload read as size - 11 bytes' },
  ];

  for (const { bug, what } of bugs) {
    test(`${what}: the oracle property fails and shrinks to <= 2 frames and <= 32 bytes`, () => {
      for (const seed of SEEDS) {
        const r = fc.check(modelProperty((o) => new BrokenDecoder(bug, o), { withLimits: false }), { seed, numRuns: 1000 });
        expect(r.failed, `seed ${seed}: the bug went unnoticed`).toBe(true);
        const [s] = r.counterexample as [Scenario];
        const bytes = scenarioBytes(s);
        expect(s.frames.length, JSON.stringify(s)).toBeLessThanOrEqual(2);
        expect(bytes.length, JSON.stringify(s)).toBeLessThanOrEqual(32);
      }
    });

    test(`${what}: the plain round-trip property fails too, on a tiny case`, () => {
      const r = fc.check(roundtripProperty((o) => new BrokenDecoder(bug, o)), { seed: 7, numRuns: 1000 });
      expect(r.failed).toBe(true);
      const [frames] = r.counterexample as [Scenario['frames'], number[]];
      expect(frames.length).toBeLessThanOrEqual(2);
      expect(frames.reduce((n, f) => n + 12 + f.payload.length, 0)).toBeLessThanOrEqual(32);
    });
  }
});

// The catalogue and the cases must agree: a requirement without a case, a case naming an unknown ID, or a
// stale SPEC.md fails the build.
import { describe, expect, test } from 'vitest';
import { CAPABILITIES } from '../../reference/src/target.ts';
import { catalogue, cases } from '../../spec/index.ts';
import { renderSpec, specIsCurrent } from '../../spec/generate.ts';
import { AREAS } from '../../spec/types.ts';

const knownCaps = new Set<string>(Object.values(CAPABILITIES));

describe('requirement catalogue', () => {
  test('IDs are well-formed, unique, and match their area', () => {
    const seen = new Set<string>();
    for (const r of catalogue) {
      expect(r.id).toMatch(/^CP-[A-Z]+-\d{3}$/);
      expect(r.id.split('-')[1]).toBe(r.area);
      expect(seen.has(r.id), `duplicate ${r.id}`).toBe(false);
      seen.add(r.id);
    }
  });

  test('every entry is complete', () => {
    for (const r of catalogue) {
      expect(AREAS).toContain(r.area);
      expect(['MUST', 'SHOULD', 'MAY']).toContain(r.level);
      for (const field of [r.title, r.statement, r.rationale]) expect(field.trim().length, r.id).toBeGreaterThan(10);
      expect(r.statement.endsWith('.'), `${r.id} statement is one sentence ending with a period`).toBe(true);
      expect(r.sources.length, `${r.id} has no source`).toBeGreaterThan(0);
      for (const c of r.capabilities) expect(knownCaps.has(c), `${r.id} needs unknown capability ${c}`).toBe(true);
    }
  });

  test('every area named by the issue has requirements', () => {
    for (const a of AREAS) expect(catalogue.some((r) => r.area === a), a).toBe(true);
  });

  test('every tested requirement has exactly one case, and every case names a known, tested requirement', () => {
    const ids = new Map(catalogue.map((r) => [r.id, r]));
    const counts = new Map<string, number>();
    for (const c of cases) {
      const r = ids.get(c.id);
      expect(r, `case for unknown requirement ${c.id}`).toBeDefined();
      expect(r?.planned, `${c.id} has a case but is still marked planned`).toBeUndefined();
      counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
    }
    for (const r of catalogue) {
      if (r.planned) continue;
      expect(counts.get(r.id) ?? 0, `${r.id} must have exactly one case`).toBe(1);
    }
  });

  test('PORT, CONC and ORDER are fully executable', () => {
    for (const r of catalogue.filter((x) => ['PORT', 'CONC', 'ORDER'].includes(x.area))) {
      expect(r.planned, r.id).toBeUndefined();
    }
  });

  test('SPEC.md is generated from the catalogue and current (run `npm run spec:generate`)', () => {
    const text = renderSpec();
    for (const r of catalogue) expect(text).toContain(`### ${r.id} (${r.level})`);
    expect(specIsCurrent()).toBe(true);
  });
});

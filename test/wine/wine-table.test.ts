// The README's Wine 8.0 table is generated from the expectation manifest (test/wine/wine-table.ts): every
// manifest entry is listed with its reason, and nothing else. Runs without Wine.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { MANIFEST, currentTable, renderTable } from './wine-table.ts';

describe('README: Wine 8.0 vs the specification', () => {
  test('the table is current (regenerate with: node test/wine/wine-table.ts --write)', () => {
    const cur = currentTable();
    expect(cur, 'README.md has no generated Wine 8.0 table').toBeDefined();
    expect(cur).toBe(renderTable());
  });

  test('every manifest entry has a non-trivial reason and appears in the table', () => {
    const m = JSON.parse(readFileSync(MANIFEST, 'utf8')) as { entries: Array<{ id: string; reason: string }> };
    const table = currentTable() ?? '';
    for (const e of m.entries) {
      expect(e.reason.length, `${e.id}: reason too short`).toBeGreaterThan(40);
      expect(table).toContain(`| ${e.id} |`);
    }
  });
});

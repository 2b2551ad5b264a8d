// Loading the specification (catalogue + cases) and selecting requirements from it.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { Level, Requirement, SpecCase } from '../../spec/index.ts';
import { AREAS } from '../../spec/types.ts';
import { UsageError } from './types.ts';

export interface Suite {
  catalogue: Requirement[];
  cases: SpecCase[];
  /** Where it came from ('spec' or a module path). */
  source: string;
}

/**
 * The suite is spec/index.ts. For the runner's own tests, the environment variable CPSPEC_SUITE may name
 * another module exporting `catalogue` and `cases` (same shapes); the host process loads the same one.
 */
export function suiteSource(): string {
  const env = process.env.CPSPEC_SUITE;
  return env && env.length > 0 ? resolve(env) : 'spec';
}

export async function loadSuite(source = suiteSource()): Promise<Suite> {
  const url = source === 'spec' ? new URL('../../spec/index.ts', import.meta.url).href : pathToFileURL(source).href;
  let mod: { catalogue?: unknown; cases?: unknown };
  try {
    mod = (await import(url)) as typeof mod;
  } catch (e) {
    throw new UsageError(`cannot load the specification (${source}): ${(e as Error)?.stack ?? String(e)}`);
  }
  if (!Array.isArray(mod.catalogue) || !Array.isArray(mod.cases)) {
    throw new UsageError(`the specification module (${source}) must export arrays 'catalogue' and 'cases'`);
  }
  return { catalogue: mod.catalogue as Requirement[], cases: mod.cases as SpecCase[], source };
}

const LEVEL_RANK: Record<Level, number> = { MUST: 0, SHOULD: 1, MAY: 2 };

export function parseLevel(s: string): Level {
  const up = s.trim().toUpperCase();
  if (up === 'MUST' || up === 'SHOULD' || up === 'MAY') return up;
  throw new UsageError(`--level must be one of must, should, may (got '${s}')`);
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i');
}

/** One --only token: an ID, an area (PORT or CP-PORT), an ID prefix, or a glob (CP-PORT-00*). */
function tokenMatcher(token: string): (r: Requirement) => boolean {
  const t = token.trim().toUpperCase();
  if (/[*?]/.test(t)) {
    const re = globToRegExp(t);
    return (r) => re.test(r.id);
  }
  const area = t.startsWith('CP-') ? t.slice(3) : t;
  if ((AREAS as readonly string[]).includes(area)) return (r) => r.area === area;
  return (r) => r.id.toUpperCase() === t;
}

function isAreaToken(token: string): boolean {
  const t = token.trim().toUpperCase();
  const area = t.startsWith('CP-') ? t.slice(3) : t;
  return (AREAS as readonly string[]).includes(area);
}

export interface Selection {
  only: string[];
  level: Level;
}

export interface Selected {
  requirements: Requirement[];
  warnings: string[];
}

/**
 * Requirements picked by --only and --level, in catalogue order. A token that matches nothing is an error
 * (a typo must not turn a CI gate into a no-op), except an area name: areas may be empty while being written.
 */
export function select(suite: Suite, sel: Selection): Selected {
  const warnings: string[] = [];
  const tokens = sel.only.map((t) => t.trim()).filter((t) => t.length > 0);
  let reqs = suite.catalogue.slice();
  if (tokens.length > 0) {
    const matchers = tokens.map((t) => ({ token: t, match: tokenMatcher(t) }));
    const unmatched: string[] = [];
    for (const m of matchers) {
      if (!suite.catalogue.some(m.match)) {
        if (isAreaToken(m.token)) warnings.push(`--only ${m.token}: the catalogue has no requirement in this area yet`);
        else unmatched.push(m.token);
      }
    }
    if (unmatched.length > 0) {
      throw new UsageError(`--only: no requirement matches ${unmatched.map((u) => `'${u}'`).join(', ')} (see cpspec list)`);
    }
    reqs = reqs.filter((r) => matchers.some((m) => m.match(r)));
  }
  reqs = reqs.filter((r) => LEVEL_RANK[r.level] <= LEVEL_RANK[sel.level]);
  return { requirements: reqs, warnings };
}

/** Consistency problems between catalogue and cases (reported as warnings, never hidden). */
export function suiteWarnings(suite: Suite): string[] {
  const w: string[] = [];
  const reqIds = new Set(suite.catalogue.map((r) => r.id));
  const caseIds = new Set<string>();
  for (const c of suite.cases) {
    if (caseIds.has(c.id)) w.push(`${c.id}: more than one case for this requirement (the first is run)`);
    caseIds.add(c.id);
    if (!reqIds.has(c.id)) w.push(`${c.id}: a case exists but the catalogue has no such requirement (not run)`);
  }
  for (const r of suite.catalogue) {
    if (!r.planned && !caseIds.has(r.id)) w.push(`${r.id}: no case implements this requirement and it is not marked planned (reported as planned)`);
  }
  return w;
}

export function caseOf(suite: Suite, id: string): SpecCase | undefined {
  return suite.cases.find((c) => c.id === id);
}

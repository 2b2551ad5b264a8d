// Expectation manifests: which cases a target is known to fail, and why. A manifest fails the run in both
// directions: an unexpected failure, and an unexpected pass (so a manifest cannot go stale).
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { EXPECTABLE, UsageError, type CaseResult, type Expectation, type ExpectedStatus } from './types.ts';

export interface Manifest {
  target?: string;
  entries: Expectation[];
}

export const TODO_REASON = 'TODO: explain';

const ID_RE = /^CP-[A-Z]+-\d{3}$/;

/** Validates a parsed manifest; returns every problem found (not just the first). */
export function validateManifest(raw: unknown, file: string): { manifest?: Manifest; problems: string[] } {
  const problems: string[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { problems: [`${file}: must be a JSON object { "target": ..., "entries": [...] }`] };
  const o = raw as { target?: unknown; entries?: unknown };
  if (o.target !== undefined && typeof o.target !== 'string') problems.push(`${file}: "target" must be a string`);
  if (!Array.isArray(o.entries)) return { problems: [...problems, `${file}: "entries" must be an array`] };
  const seen = new Set<string>();
  const entries: Expectation[] = [];
  o.entries.forEach((e: unknown, i: number) => {
    const where = `${file}: entries[${i}]`;
    if (typeof e !== 'object' || e === null) {
      problems.push(`${where}: must be an object`);
      return;
    }
    const x = e as { id?: unknown; status?: unknown; reason?: unknown };
    const known = new Set(['id', 'status', 'reason']);
    for (const k of Object.keys(x)) if (!known.has(k)) problems.push(`${where}: unknown field "${k}"`);
    if (typeof x.id !== 'string' || !ID_RE.test(x.id)) {
      problems.push(`${where}: "id" must be a requirement ID like CP-PORT-001 (got ${JSON.stringify(x.id)})`);
      return;
    }
    if (seen.has(x.id)) problems.push(`${where}: ${x.id} is listed twice`);
    seen.add(x.id);
    const status = x.status === undefined ? 'fail' : x.status;
    if (typeof status !== 'string' || !(EXPECTABLE as readonly string[]).includes(status)) {
      problems.push(`${where} (${x.id}): "status" must be one of ${EXPECTABLE.join(', ')} (got ${JSON.stringify(x.status)})`);
      return;
    }
    if (typeof x.reason !== 'string' || x.reason.trim().length === 0) {
      problems.push(`${where} (${x.id}): needs a non-empty "reason" (why this target is expected to ${status})`);
      return;
    }
    entries.push({ id: x.id, status: status as ExpectedStatus, reason: x.reason });
  });
  if (problems.length > 0) return { problems };
  const manifest: Manifest = { entries };
  if (typeof o.target === 'string') manifest.target = o.target;
  return { manifest, problems };
}

/** Loads a manifest; a missing file is an error unless `allowMissing` (for --update-expectations). */
export function loadManifest(file: string, allowMissing = false): Manifest {
  if (!existsSync(file)) {
    if (allowMissing) return { entries: [] };
    throw new UsageError(`--expect: ${file} does not exist (use --update-expectations to create it)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--expect: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  const { manifest, problems } = validateManifest(raw, file);
  if (!manifest) throw new UsageError(`invalid expectation manifest:\n  ${problems.join('\n  ')}`);
  return manifest;
}

export function manifestMap(m: Manifest | undefined): Map<string, Expectation> {
  return new Map((m?.entries ?? []).map((e) => [e.id, e]));
}

/**
 * The manifest this run implies: entries for cases that ran and failed, timed out or crashed (any level),
 * keeping known reasons; existing unsupported entries that still hold; entries of cases this run did not
 * decide (not selected, not run, planned) unchanged. Passing cases lose their entry.
 */
export function updatedManifest(old: Manifest, results: CaseResult[], target: string): { manifest: Manifest; needReasons: string[] } {
  const byId = new Map(old.entries.map((e) => [e.id, e]));
  const decided = new Map<string, CaseResult>();
  for (const r of results) if (r.rawStatus !== 'planned' && !r.notRun) decided.set(r.id, r);
  const out = new Map<string, Expectation>();
  for (const e of old.entries) if (!decided.has(e.id)) out.set(e.id, e);
  const needReasons: string[] = [];
  for (const r of decided.values()) {
    const raw = r.rawStatus as ExpectedStatus | 'pass';
    const prev = byId.get(r.id);
    let status: ExpectedStatus | undefined;
    if (r.status === 'flaky') status = undefined;
    else if (raw === 'fail' || raw === 'timeout' || raw === 'crash') status = raw;
    else if (raw === 'unsupported' && prev?.status === 'unsupported') status = 'unsupported';
    if (!status) continue;
    const reason = prev && prev.reason.trim().length > 0 ? prev.reason : TODO_REASON;
    if (reason === TODO_REASON) needReasons.push(r.id);
    out.set(r.id, { id: r.id, status, reason });
  }
  const entries = [...out.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { manifest: { target: old.target ?? target, entries }, needReasons };
}

export function writeManifest(file: string, m: Manifest): void {
  mkdirSync(dirname(file), { recursive: true });
  const body = {
    target: m.target,
    entries: m.entries.map((e) => (e.status === 'fail' ? { id: e.id, status: 'fail', reason: e.reason } : e)),
  };
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`);
}

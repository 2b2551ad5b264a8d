// Reports are well-formed: JSON (schema), JUnit XML (parses, counts match), Markdown (one row per case).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { escapeXml } from '../../conformance/src/reports/junit.ts';
import { cpspec, MINI, type CliResult } from '../fixtures/drivers/run-cli.ts';

interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
  text: string;
}

const ENTITY: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(s: string, where: string): string {
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(s)) throw new Error(`${where}: character not allowed in XML`);
  return s.replace(/&([^;]*);?/g, (m, name: string) => {
    if (!m.endsWith(';')) throw new Error(`${where}: bare '&'`);
    if (name in ENTITY) return ENTITY[name];
    const num = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(name);
    if (num) return String.fromCodePoint(num[1].startsWith('x') ? parseInt(num[1].slice(1), 16) : Number(num[1]));
    throw new Error(`${where}: unknown entity &${name};`);
  });
}

/** A strict little XML parser (elements, attributes, text, the prolog): enough to prove well-formedness. */
function parseXml(xml: string): XmlNode {
  let i = 0;
  const prolog = /^<\?xml version="1\.0" encoding="UTF-8"\?>\s*/.exec(xml);
  if (!prolog) throw new Error('missing XML declaration');
  i = prolog[0].length;
  const root: XmlNode = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: XmlNode[] = [root];
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (text.includes('>')) throw new Error(`raw '>' in text at ${i}`);
    stack[stack.length - 1].text += decode(text, `text at ${i}`);
    if (lt < 0) break;
    if (xml.startsWith('</', lt)) {
      const end = xml.indexOf('>', lt);
      const name = xml.slice(lt + 2, end).trim();
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`mismatched </${name}> at ${lt} (open: ${open?.name})`);
      i = end + 1;
      continue;
    }
    const m = /^<([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.:-]*="[^"<]*")*)\s*(\/?)>/.exec(xml.slice(lt));
    if (!m) throw new Error(`malformed tag at ${lt}: ${xml.slice(lt, lt + 80)}`);
    const node: XmlNode = { name: m[1], attrs: {}, children: [], text: '' };
    for (const a of m[2].matchAll(/([A-Za-z_][\w.:-]*)="([^"]*)"/g)) {
      if (a[1] in node.attrs) throw new Error(`duplicate attribute ${a[1]}`);
      node.attrs[a[1]] = decode(a[2], `attribute ${a[1]}`);
    }
    stack[stack.length - 1].children.push(node);
    if (!m[3]) stack.push(node);
    i = lt + m[0].length;
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1].name}>`);
  if (root.children.length !== 1) throw new Error('exactly one root element expected');
  return root.children[0];
}

describe('reports', () => {
  let r: CliResult;
  beforeAll(async () => {
    r = await cpspec(['run', '--target', MINI, '--only', 'CP-PORT-9*,CP-CONC-9*', '--timeout', '1500', '--report', 'console,json,junit,md'], { fixtureSuite: true });
  }, 60_000);

  it('JSON: machine-readable, versioned, complete', () => {
    const rep = r.report!;
    expect(rep.schema).toBe('cpspec-report');
    expect(rep.schemaVersion).toBe(1);
    expect(rep.runner.name).toBe('cpspec');
    expect(rep.runner.protocol).toBe(1);
    expect(rep.target.info?.name).toBe('mini');
    expect(rep.exitCode).toBe(r.code);
    expect(rep.summary.total).toBe(rep.results.length);
    const counted = rep.results.reduce<Record<string, number>>((acc, x) => ((acc[x.status] = (acc[x.status] ?? 0) + 1), acc), {});
    for (const [status, n] of Object.entries(counted)) expect(rep.summary[status as keyof typeof rep.summary]).toBe(n);
    for (const x of rep.results) {
      expect(x.id).toMatch(/^CP-[A-Z]+-\d{3}$/);
      expect(['MUST', 'SHOULD', 'MAY']).toContain(x.level);
      expect(typeof x.durationMs).toBe('number');
      expect(Array.isArray(x.attempts)).toBe(true);
    }
  });

  it('JUnit XML: well-formed, one testsuite per area, counts match the summary', () => {
    const xml = readFileSync(join(r.outDir, 'cpspec-junit.xml'), 'utf8');
    const root = parseXml(xml);
    expect(root.name).toBe('testsuites');
    const suites = root.children.filter((c) => c.name === 'testsuite');
    expect(suites.map((s) => s.attrs.name).sort()).toEqual(['cpspec.CONC', 'cpspec.PORT']);
    let tests = 0;
    let failures = 0;
    let errors = 0;
    let skipped = 0;
    for (const s of suites) {
      const cases = s.children.filter((c) => c.name === 'testcase');
      const f = cases.filter((c) => c.children.some((k) => k.name === 'failure')).length;
      const e = cases.filter((c) => c.children.some((k) => k.name === 'error')).length;
      const sk = cases.filter((c) => c.children.some((k) => k.name === 'skipped')).length;
      expect(Number(s.attrs.tests)).toBe(cases.length);
      expect(Number(s.attrs.failures)).toBe(f);
      expect(Number(s.attrs.errors)).toBe(e);
      expect(Number(s.attrs.skipped)).toBe(sk);
      tests += cases.length;
      failures += f;
      errors += e;
      skipped += sk;
    }
    expect(Number(root.attrs.tests)).toBe(tests);
    expect(Number(root.attrs.failures)).toBe(failures);
    expect(Number(root.attrs.errors)).toBe(errors);
    expect(Number(root.attrs.skipped)).toBe(skipped);
    const s = r.report!.summary;
    expect(tests).toBe(s.total);
    expect(failures).toBe(s.fail + s['unexpected-pass']);
    expect(errors).toBe(s.timeout + s.crash);
    expect(skipped).toBe(s.unsupported + s.planned + s['expected-fail']);
    // Escaping survived: the title with <&>" and the control characters from the case.
    const c902 = suites.flatMap((x) => x.children).find((c) => c.attrs.name?.startsWith('CP-PORT-902'))!;
    expect(c902.attrs.name).toContain('fails an assertion <&> "quoted"');
    expect(c902.children[0].attrs.message).toContain('<on purpose> & "quoted"');
  });

  it('Markdown: a summary and one table row per case', () => {
    const md = readFileSync(join(r.outDir, 'cpspec-report.md'), 'utf8');
    expect(md).toMatch(/^### cpspec conformance: /);
    expect(md).toMatch(/\*\*2 passed, 4 failed, /);
    const all = md.slice(md.indexOf('<details>'));
    const rows = all.split('\n').filter((l) => /^\| \S+ \S+ \| `CP-/.test(l));
    expect(rows).toHaveLength(r.report!.results.length);
    for (const row of rows) expect(row.split(/(?<!\\)\|/).length).toBe(8);
  });

  it('escapeXml removes what XML forbids', () => {
    const s = escapeXml('a\u0000b\u001bc<d>&"\'\uD800e');
    expect(() => parseXml(`<?xml version="1.0" encoding="UTF-8"?>\n<x a="${s}">${s}</x>`)).not.toThrow();
  });
});

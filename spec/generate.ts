// Renders SPEC.md from the catalogue. `npm run spec:generate` writes it; the tests check it is current,
// so the prose and the executable cases cannot drift apart.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { catalogue, caseFor } from './index.ts';
import { AREAS, type Area } from './types.ts';

const AREA_TITLES: Record<Area, string> = {
  PORT: 'Port: post, dequeue, timeouts, close',
  CONC: 'Concurrency: the running-thread limit',
  ORDER: 'Ordering: FIFO packets, LIFO waiters',
  EOF: 'End of stream: zero-byte completions, probes and resets',
  PARTIAL: 'Partial transfers: the send contract',
  CANCEL: 'Cancellation and close with I/O pending',
  POOL: 'Pool exhaustion: buffers and sessions',
  ACCEPT: 'Accept and connect',
  FRAME: 'Packet framing',
};

export const SPEC_PATH = fileURLToPath(new URL('../SPEC.md', import.meta.url));

export function renderSpec(): string {
  const lines: string[] = [];
  const tested = catalogue.filter((r) => !r.planned).length;
  lines.push(
    '# cpspec: the completion-port specification',
    '',
    '<!-- Generated from spec/catalogue.ts by `npm run spec:generate`. Do not edit by hand. -->',
    '',
    'Each requirement has a stable ID, a level (MUST, SHOULD, MAY in the RFC 2119 sense), one statement, the',
    'reason it exists, its sources (tags from the semantics catalogue, or issue threads), and the capabilities a',
    'target needs for its scenario. A target without a capability reports the requirement `unsupported`; a',
    'requirement whose scenario is still being written is marked *planned* and reported as such in every run.',
    '',
    `${catalogue.length} requirements: ${tested} with an executable scenario, ${catalogue.length - tested} planned.`,
    '',
    '| area | MUST | SHOULD | MAY | planned |',
    '|---|---|---|---|---|',
  );
  for (const a of AREAS) {
    const rs = catalogue.filter((r) => r.area === a);
    const count = (l: string) => rs.filter((r) => r.level === l).length;
    lines.push(`| [${a}](#${a.toLowerCase()}) | ${count('MUST')} | ${count('SHOULD')} | ${count('MAY')} | ${rs.filter((r) => r.planned).length} |`);
  }
  for (const a of AREAS) {
    lines.push('', `## ${a}`, '', `${AREA_TITLES[a]}.`);
    for (const r of catalogue.filter((x) => x.area === a)) {
      lines.push('', `### ${r.id} (${r.level}): ${r.title}`, '', r.statement, '', `*Why:* ${r.rationale}`, '');
      lines.push(`- Sources: ${r.sources.join(', ')}`);
      lines.push(`- Needs: ${r.capabilities.map((c) => '`' + c + '`').join(', ')}`);
      lines.push(r.planned ? `- Scenario: planned, ${r.planned}` : `- Scenario: \`spec/cases/${a.toLowerCase()}.ts\`${caseFor(r.id) ? '' : ' (MISSING)'}`);
    }
  }
  lines.push('');
  return lines.join('\n');
}

export function specIsCurrent(): boolean {
  try {
    return readFileSync(SPEC_PATH, 'utf8') === renderSpec();
  } catch {
    return false;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SPEC_PATH, renderSpec());
  console.log(`wrote ${SPEC_PATH}`);
}

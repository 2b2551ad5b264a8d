// The requirement catalogue (stub: being written).
import type { Requirement } from './types.ts';

export const catalogue: Requirement[] = [
  {
    id: 'CP-PORT-001',
    area: 'PORT',
    level: 'MUST',
    title: 'posted values come back unchanged',
    statement: 'A posted packet is dequeued with the same key, byte count and token, and status ok.',
    rationale: 'Servers route completions by key and token; any change misroutes I/O.',
    sources: ['MS-PQCS', 'WINE-NTSYNC'],
    capabilities: ['port'],
  },
];

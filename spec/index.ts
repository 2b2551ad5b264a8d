// The specification: the requirement catalogue and the scenario cases that check it.
import { catalogue } from './catalogue.ts';
import { cases } from './cases/index.ts';
import type { Requirement, SpecCase } from './types.ts';

export { catalogue, cases };
export type { Requirement, SpecCase, CaseContext, Level, Area } from './types.ts';

const byId = new Map<string, Requirement>(catalogue.map((r) => [r.id, r]));
const caseById = new Map<string, SpecCase>(cases.map((c) => [c.id, c]));

export function requirement(id: string): Requirement | undefined {
  return byId.get(id);
}

export function caseFor(id: string): SpecCase | undefined {
  return caseById.get(id);
}

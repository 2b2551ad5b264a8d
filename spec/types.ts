// Types shared by the requirement catalogue, the scenario cases and the runner.
import type { Target, TargetInfo } from '../reference/src/target.ts';

export type Level = 'MUST' | 'SHOULD' | 'MAY';

export const AREAS = ['PORT', 'CONC', 'ORDER', 'EOF', 'PARTIAL', 'CANCEL', 'POOL', 'ACCEPT', 'FRAME'] as const;
export type Area = (typeof AREAS)[number];

export interface Requirement {
  /** Stable ID: CP-<AREA>-<NNN>. Never reused, never renumbered. */
  id: string;
  area: Area;
  level: Level;
  /** Short name, used in reports. */
  title: string;
  /** One sentence: what an implementation must do. */
  statement: string;
  /** Why it matters: the bug it prevents. */
  rationale: string;
  /** Where the behaviour is documented or observed: tags from the semantics catalogue (MS-GQCS, WINE-SOCK, ...). */
  sources: string[];
  /** Capabilities the scenario needs (see CAPABILITIES in reference/src/target.ts). */
  capabilities: string[];
  /**
   * Set while the scenario test is not written yet: names the issue that brings it. The build checks that
   * every requirement without `planned` has exactly one case, and the runner reports planned ones as
   * `planned` in every summary, so they are never silently left out.
   */
  planned?: string;
}

export interface CaseContext {
  readonly info: TargetInfo;
  /**
   * Workload scale: 1 for in-process targets, smaller (e.g. 0.2) for slow targets such as a driver under
   * Wine. Cases multiply packet counts by it (never below a floor that still proves the point).
   */
  readonly scale: number;
  /** Adds a line to the case's log (shown in reports on failure). */
  log(line: string): void;
  /** Stops the case as unsupported: the target lacks something the scenario needs. */
  unsupported(reason: string): never;
}

export interface SpecCase {
  /** Requirement ID this case checks. */
  id: string;
  run(target: Target, ctx: CaseContext): Promise<void>;
}

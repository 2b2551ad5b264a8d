// Messages between the runner (parent) and the host process (child) over Node IPC.
import type { TargetInfo } from '../../reference/src/target.ts';
import type { RawStatus } from './types.ts';

export type ToHost =
  | { type: 'init'; target: string; suite: string; scale: number; handshakeTimeoutMs: number }
  | { type: 'run'; seq: number; id: string }
  | { type: 'reset'; seq: number }
  /** What the target is waiting for (asked just before a timed-out case is killed). */
  | { type: 'status'; seq: number }
  | { type: 'dispose'; seq: number };

export interface CaseOutcome {
  status: RawStatus;
  durationMs: number;
  message?: string;
  details?: string;
  log: string[];
  stderrTail?: string;
}

export type FromHost =
  | { type: 'ready'; info: TargetInfo }
  /** fatal: the target cannot run at all (exit code 2), e.g. a failed driver handshake. */
  | { type: 'init-error'; message: string }
  | { type: 'process'; pid: number }
  | { type: 'result'; seq: number; outcome: CaseOutcome; targetBroken: boolean }
  /** The target was found broken before the case started (its driver died between cases). */
  | { type: 'broken'; seq: number; message: string; stderrTail?: string }
  | { type: 'reset-done'; seq: number; ok: true }
  | { type: 'reset-done'; seq: number; ok: false; status: 'fail' | 'crash'; message: string; stderrTail?: string }
  | { type: 'disposed'; seq: number }
  | { type: 'status'; seq: number; outstanding: string[] }
  | { type: 'fatal'; message: string };

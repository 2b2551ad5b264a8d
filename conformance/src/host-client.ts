// The runner's side of the host process: starts it, sends requests, and enforces a deadline on every one.
// The host runs in its own process group, so killing the group also kills a driver it started (and the
// driver's own children); the pids the host reports are killed as well, in case one left the group.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TargetInfo } from '../../reference/src/target.ts';
import type { FromHost, ToHost } from './host-messages.ts';
import { TailBuffer } from './lines.ts';

const HOST_PATH = fileURLToPath(new URL('./host.ts', import.meta.url));

// The reply is the message of the awaited type, or its alternative ('broken' for 'result', 'init-error' for
// 'ready'); callers narrow on msg.type.
export type HostReply =
  | { kind: 'reply'; msg: FromHost }
  | { kind: 'deadline' }
  | { kind: 'exit'; code: number | null; signal: NodeJS.Signals | null; fatal?: string };

/** All live hosts, so the runner can kill them on any exit path (including a signal or an exception). */
const live = new Set<HostProcess>();

export function killAllHosts(): void {
  for (const h of live) h.killNow();
}

export class HostProcess {
  private readonly child: ChildProcess;
  private readonly output = new TailBuffer(4096);
  private readonly pids = new Set<number>();
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private fatal: string | undefined;
  private readonly waiters = new Set<(m: FromHost | null) => void>();
  private readonly closeWaiters: Array<() => void> = [];
  private closed = false;
  private seq = 0;

  constructor() {
    this.child = fork(HOST_PATH, [], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
      env: process.env,
    });
    live.add(this);
    this.child.stdout?.on('data', (d: Buffer) => this.output.write(d));
    this.child.stderr?.on('data', (d: Buffer) => this.output.write(d));
    this.child.on('message', (m: FromHost) => {
      if (m.type === 'process') {
        this.pids.add(m.pid);
        return;
      }
      if (m.type === 'fatal') this.fatal = m.message;
      for (const w of [...this.waiters]) w(m);
    });
    this.child.on('error', () => {
      /* spawn or IPC failure: 'exit' follows or the deadline fires */
    });
    this.child.on('exit', (code, signal) => {
      this.exitInfo = { code, signal };
      live.delete(this);
      this.killGroup();
      for (const w of [...this.waiters]) w(null);
    });
    this.child.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Combined stdout/stderr tail of the host (and of a driver that writes through it). */
  tail(): string {
    return this.output.text();
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** Waits (at most `ms`) for the host's output pipes to close, so the tail is complete after an exit. */
  async drained(ms = 300): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.closeWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Sends a message and waits for the reply of type `type` (matching seq), the host's exit, or the deadline. */
  request<T extends FromHost['type']>(msg: ToHost, type: T, deadlineMs: number): Promise<HostReply> {
    return new Promise((resolve) => {
      if (this.exitInfo) return resolve({ kind: 'exit', ...this.exitInfo, fatal: this.fatal });
      const wantSeq = 'seq' in msg ? msg.seq : undefined;
      let timer: NodeJS.Timeout | undefined;
      const waiter = (m: FromHost | null) => {
        if (m === null) {
          finish({ kind: 'exit', ...this.exitInfo!, fatal: this.fatal });
          return;
        }
        const matchesType = m.type === type || (type === 'result' && m.type === 'broken') || (type === 'ready' && m.type === 'init-error');
        if (!matchesType) return;
        if (wantSeq !== undefined && 'seq' in m && m.seq !== wantSeq) return;
        finish({ kind: 'reply', msg: m });
      };
      const finish = (r: HostReply) => {
        if (timer) clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(r);
      };
      this.waiters.add(waiter);
      timer = setTimeout(() => finish({ kind: 'deadline' }), Math.max(0, deadlineMs));
      try {
        this.child.send(msg, (err) => {
          if (err) {
            /* the channel closed: 'exit' resolves the waiter */
          }
        });
      } catch {
        /* same */
      }
    });
  }

  nextSeq(): number {
    return ++this.seq;
  }

  private killGroup(): void {
    const pid = this.child.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* the group is gone */
      }
    }
    for (const p of this.pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** Kills the host, its process group and the processes it reported, synchronously. */
  killNow(): void {
    this.killGroup();
    try {
      this.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }

  /** Kills the host and waits (at most `ms`) until it is reaped. */
  async kill(ms = 2000): Promise<void> {
    this.killNow();
    if (this.exitInfo) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
    live.delete(this);
  }

  /** Asks the host to dispose of the target and exit; kills it if that takes longer than `ms`. */
  async dispose(ms: number): Promise<void> {
    if (this.exitInfo) {
      this.killGroup();
      return;
    }
    const r = await this.request({ type: 'dispose', seq: this.nextSeq() }, 'disposed', ms);
    if (r.kind === 'reply') {
      await new Promise<void>((resolve) => {
        if (this.exitInfo) return resolve();
        const t = setTimeout(resolve, 500);
        this.child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await this.kill(1000);
  }
}

export interface StartedHost {
  host: HostProcess;
  info: TargetInfo;
}

export type StartResult =
  | { ok: true; host: HostProcess; info: TargetInfo }
  | { ok: false; reason: 'init-error' | 'deadline' | 'exit'; message: string; tail: string };

/** Starts a host and creates the target in it, within `deadlineMs`. */
export async function startHost(init: Omit<Extract<ToHost, { type: 'init' }>, 'type'>, deadlineMs: number): Promise<StartResult> {
  const host = new HostProcess();
  const r = await host.request({ type: 'init', ...init }, 'ready', deadlineMs);
  if (r.kind === 'reply' && r.msg.type === 'ready') return { ok: true, host, info: r.msg.info };
  let res: StartResult;
  if (r.kind === 'reply' && r.msg.type === 'init-error') {
    // The message carries its own details (a driver's stderr tail, a stack): no host tail.
    res = { ok: false, reason: 'init-error', message: r.msg.message, tail: '' };
    await host.dispose(2000);
    return res;
  }
  if (r.kind === 'deadline') {
    await host.kill();
    await host.drained();
    return { ok: false, reason: 'deadline', message: `the target was not ready within ${deadlineMs} ms (creating it, or the driver handshake, took too long)`, tail: host.tail() };
  }
  await host.kill();
  await host.drained();
  const how = r.kind === 'exit' ? (r.signal ? `was killed by signal ${r.signal}` : `exited with code ${r.code}`) : 'ended';
  return { ok: false, reason: 'exit', message: `the host process ${how} while creating the target${r.kind === 'exit' && r.fatal ? `: ${r.fatal}` : ''}`, tail: host.tail() };
}

// A small, strict command-line parser: --flag value, --flag=value, boolean flags; unknown flags are errors.
import { UsageError } from './types.ts';

export interface FlagSpec {
  name: string;
  /** 'string' takes a value; 'boolean' does not; 'list' takes a value and may repeat. */
  kind: 'string' | 'boolean' | 'list';
}

export interface Parsed {
  flags: Map<string, string | true | string[]>;
  positionals: string[];
}

export function parseArgs(argv: string[], specs: FlagSpec[], command: string): Parsed {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const flags = new Map<string, string | true | string[]>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = byName.get(name);
      if (!spec) {
        const near = specs.filter((s) => s.name.startsWith(name.slice(0, 3))).map((s) => `--${s.name}`);
        throw new UsageError(`unknown option --${name} for '${command}'${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}; see cpspec ${command} --help`);
      }
      if (spec.kind === 'boolean') {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        flags.set(name, true);
        continue;
      }
      let value: string;
      if (eq >= 0) value = a.slice(eq + 1);
      else {
        if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value; see cpspec ${command} --help`);
        value = argv[++i];
      }
      if (spec.kind === 'list') {
        const prev = flags.get(name);
        flags.set(name, [...(Array.isArray(prev) ? prev : []), value]);
      } else {
        if (flags.has(name)) throw new UsageError(`--${name} given twice`);
        flags.set(name, value);
      }
    } else if (a.startsWith('-') && a.length > 1) {
      if (a === '-h' && byName.has('help')) flags.set('help', true);
      else throw new UsageError(`unknown option ${a} for '${command}'; see cpspec ${command} --help`);
    } else {
      positionals.push(a);
    }
  }
  return { flags, positionals };
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function bool(p: Parsed, name: string): boolean {
  return p.flags.get(name) === true;
}

export function list(p: Parsed, name: string): string[] {
  const v = p.flags.get(name);
  const raw = Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  return raw.flatMap((x) => x.split(',')).map((x) => x.trim()).filter((x) => x.length > 0);
}

export function intFlag(p: Parsed, name: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = str(p, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v.trim())) throw new UsageError(`--${name} needs an integer (got '${v}')`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`--${name} must be in ${min}..${max} (got ${n})`);
  return n;
}

export function numFlag(p: Parsed, name: string, dflt: number, minExclusive: number, max: number): number {
  const v = str(p, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= minExclusive || n > max) throw new UsageError(`--${name} needs a number in (${minExclusive}, ${max}] (got '${v}')`);
  return n;
}

// bin/serve-model.js: the reference model behind the driver protocol, with optional faults.
import { serveTarget } from './serve.ts';
import { applyModelFault, MODEL_FAULTS, type ModelOptions } from './targets.ts';
import { UsageError } from './types.ts';

const HELP = `Usage: serve-model.js [--fault F]... [--hardware-threads N]

Serves the cpspec reference model as a driver on stdin/stdout (JSON-RPC, conformance/PROTOCOL.md).
Faults (repeatable, or comma-separated):
  ${MODEL_FAULTS.join('\n  ')}
`;

export function parseServeArgs(argv: string[]): ModelOptions {
  const options: ModelOptions = { faults: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = () => {
      if (a.startsWith('--') && eq > 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--fault') {
      for (const f of value().split(',')) if (f.trim()) applyModelFault(options, f);
    } else if (flag === '--hardware-threads') {
      applyModelFault(options, `hardware-threads=${value()}`);
    } else {
      throw new UsageError(`unknown option ${a}\n${HELP}`);
    }
  }
  return options;
}

export async function serveMain(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  let options: ModelOptions;
  try {
    options = parseServeArgs(argv);
  } catch (e) {
    process.stderr.write(`serve-model: ${(e as Error).message}\n`);
    process.exit(2);
  }
  let create: (o?: unknown) => import('../../reference/src/target.ts').Target;
  try {
    ({ createModelTarget: create } = (await import('../../reference/src/model/index.ts')) as { createModelTarget: typeof create });
  } catch (e) {
    process.stderr.write(`serve-model: cannot load the reference model: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const o: { faults: ModelOptions['faults']; hardwareThreads?: number } = { faults: options.faults };
  if (options.hardwareThreads !== undefined) o.hardwareThreads = options.hardwareThreads;
  const target = create(o);
  process.stdout.on('error', () => process.exit(0));
  await serveTarget(target, process.stdin, process.stdout, { onShutdown: () => undefined });
  process.stdout.write('', () => process.exit(0));
}

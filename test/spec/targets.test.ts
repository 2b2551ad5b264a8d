// The specification run against the built-in targets, in-process, as part of the project's own tests:
// every executable requirement must pass on the model and on the native reference implementation.
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { Target, TargetInfo } from '../../reference/src/target.ts';
import { createModelTarget } from '../../reference/src/model/index.ts';
import { createNativeTarget } from '../../native/js/target.ts';
import { catalogue, caseFor } from '../../spec/index.ts';
import type { CaseContext } from '../../spec/types.ts';

const executable = catalogue.filter((r) => !r.planned);

const targets: Array<[string, () => Promise<Target>]> = [
  ['model', async () => createModelTarget()],
  ['native', () => createNativeTarget()],
];

for (const [name, make] of targets) {
  describe(`spec against ${name}`, () => {
    let target: Target;
    let info: TargetInfo;
    beforeAll(async () => {
      target = await make();
      info = await target.info();
    });
    afterAll(async () => {
      await target?.dispose();
    });

    for (const r of executable) {
      test(`${r.id} ${r.title}`, { timeout: 120_000 }, async () => {
        const missing = r.capabilities.filter((c) => !info.capabilities.includes(c));
        // The built-in targets declare every capability the executable requirements need: a missing one is
        // a regression, not a reason to skip.
        if (missing.length) throw new Error(`${name} lacks capabilities ${missing.join(', ')} needed by ${r.id}`);
        const log: string[] = [];
        const ctx: CaseContext = {
          info,
          scale: 1,
          log: (line) => log.push(line),
          unsupported: (reason) => {
            throw new Error(`${name} reported ${r.id} unsupported: ${reason}`);
          },
        };
        try {
          await caseFor(r.id)!.run(target, ctx);
        } catch (e) {
          if (e instanceof Error && log.length) e.message += `\ncase log:\n  ${log.join('\n  ')}`;
          throw e;
        } finally {
          await target.reset();
        }
      });
    }
  });
}

// Every socket scenario case (EOF, PARTIAL, CANCEL, ACCEPT) against the reference model, in process: a
// mini runner that checks capabilities, builds a CaseContext, runs the case and resets the target.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createModelTarget } from '../../reference/src/model/index.ts';
import type { Target, TargetInfo } from '../../reference/src/target.ts';
import { catalogue, cases } from '../../spec/index.ts';
import type { CaseContext } from '../../spec/types.ts';

const AREAS = ['EOF', 'PARTIAL', 'CANCEL', 'ACCEPT'];
const socketReqs = catalogue.filter((r) => AREAS.includes(r.area));

class Unsupported extends Error {}

let target: Target;
let info: TargetInfo;

beforeAll(async () => {
  target = createModelTarget();
  info = await target.info();
});

afterAll(async () => {
  await target.dispose();
});

describe('socket scenarios on the model', () => {
  test('every socket requirement has a case', () => {
    for (const r of socketReqs) expect(cases.some((c) => c.id === r.id), r.id).toBe(true);
  });

  for (const r of socketReqs) {
    test(`${r.id} ${r.title}`, async () => {
      const c = cases.find((x) => x.id === r.id);
      expect(c, `no case for ${r.id}`).toBeDefined();
      for (const cap of r.capabilities) expect(info.capabilities, `${r.id} needs ${cap}`).toContain(cap);
      const log: string[] = [];
      const ctx: CaseContext = {
        info,
        scale: 1,
        log: (line) => log.push(line),
        unsupported: (reason) => {
          throw new Unsupported(reason);
        },
      };
      try {
        await c!.run(target, ctx);
      } catch (e) {
        throw new Error(`${r.id} failed: ${(e as Error).message}\nlog:\n${log.join('\n')}`, { cause: e });
      } finally {
        await target.reset();
      }
    }, 40_000);
  }
});

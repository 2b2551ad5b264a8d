import assert from 'node:assert/strict';
import type { SpecCase } from '../types.ts';

export const portCases: SpecCase[] = [
  {
    id: 'CP-PORT-001',
    async run(t) {
      const port = await t.createPort(1);
      await t.post(port, { key: 7, bytes: 42, token: 99 });
      const r = await t.dequeue(port, 1000);
      assert.equal(r.kind, 'packet');
      if (r.kind === 'packet') assert.deepEqual(r.packet, { key: 7, bytes: 42, token: 99, status: 'ok', nativeError: 0 });
      await t.closePort(port);
    },
  },
];

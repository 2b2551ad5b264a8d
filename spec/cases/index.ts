// Every scenario case, one per requirement ID (checked by test/spec/catalogue.test.ts).
import type { SpecCase } from '../types.ts';
import { concCases } from './conc.ts';
import { orderCases } from './order.ts';
import { portCases } from './port.ts';

export const cases: SpecCase[] = [...portCases, ...concCases, ...orderCases];

import type { SpecCase } from '../types.ts';
import { portCases } from './port.ts';

export const cases: SpecCase[] = [...portCases];

// Every scenario case, one per requirement ID (checked by test/spec/catalogue.test.ts).
import type { SpecCase } from '../types.ts';
import { acceptCases } from './accept.ts';
import { cancelCases } from './cancel.ts';
import { concCases } from './conc.ts';
import { eofCases } from './eof.ts';
import { frameCases } from './frame.ts';
import { orderCases } from './order.ts';
import { partialCases } from './partial.ts';
import { poolCases } from './pool.ts';
import { poolSocketCases } from './pool-sockets.ts';
import { portCases } from './port.ts';

export const cases: SpecCase[] = [...portCases, ...concCases, ...orderCases, ...eofCases, ...partialCases, ...cancelCases, ...acceptCases, ...poolCases, ...poolSocketCases, ...frameCases];

#!/usr/bin/env node
// The cpspec command. Node (>= 22.18) runs the TypeScript sources directly by stripping types.
import { cli } from '../src/cli.ts';

cli();

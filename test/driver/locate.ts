// Where the standalone driver is: env CPSPEC_DRIVER (the sanitizer runs point it at their builds), else
// the release build that `npm install` / `npm run build:native` makes.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

function newestSource(): number {
  let newest = 0;
  for (const dir of ['native/driver', 'native/core']) {
    const abs = path.join(ROOT, dir);
    if (!existsSync(abs)) continue;
    for (const f of readdirSync(abs)) newest = Math.max(newest, statSync(path.join(abs, f)).mtimeMs);
  }
  return newest;
}

export function driverPath(): string {
  const fromEnv = process.env.CPSPEC_DRIVER;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CPSPEC_DRIVER=${fromEnv} does not exist`);
    return path.resolve(fromEnv);
  }
  for (const rel of ['build/cpspec-driver', 'build/Release/cpspec-driver']) {
    const p = path.join(ROOT, rel);
    if (!existsSync(p)) continue;
    if (statSync(p).mtimeMs < newestSource()) {
      console.warn(`warning: ${rel} is older than the sources in native/driver or native/core; run npm run build:native`);
    }
    return p;
  }
  throw new Error('the native driver is not built: run `npm run build:native` (npm install does it too), or set CPSPEC_DRIVER');
}

// npm run bench:pool — builds (if needed) and runs the native buffer-pool benchmark, cpspec-bench-pool
// (native/bench/pool_bench.cpp): cpspec::pool::BufferPool (per-thread stealable magazines over a lock-free
// free list) against a mutex+stack pool like the seeds', malloc/free, malloc+memset+free and an owner-only
// per-thread-cache prototype, on 1 and 2 threads, 8 KiB and 64 B.
//
// usage: node bench/pool.ts [--json] [--reps N] [--quick]
//   Arguments go to the benchmark binary. The table (or JSON with --json) is printed on stdout; build output
//   goes to stderr. Targets are printed PASS/MISS, never asserted.
//
// The binary: env CPSPEC_BENCH_POOL if set, else built in build-bench/ (see bench/lib.ts).
import { locateNativeBinary, runInherit } from './lib.ts';

function main(): number {
  let bin: string;
  try {
    bin = locateNativeBinary({ target: 'cpspec-bench-pool', envVar: 'CPSPEC_BENCH_POOL', label: 'bench:pool' });
  } catch (e) {
    process.stderr.write(`bench:pool: ${(e as Error).message}\n`);
    return 1;
  }
  return runInherit(bin, process.argv.slice(2), 'bench:pool');
}

process.exitCode = main();

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native threads and child processes: forks isolate a crashing addon from the other test files.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: run test files two at a time so the thread-timing tests are not starved.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});

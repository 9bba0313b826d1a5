import { defineConfig } from 'vitest/config';

// `unit` needs nothing outside the process; `integration` talks to real servers that
// test/harness/global-setup.ts starts (or takes from CAUSEWAY_TEST_* variables); `chaos` starts
// its own cluster and breaks it (test/chaos).
// The examples import the package by name (`causeway/pg`...), mapped to the sources by
// tsconfig.json's `paths`, as tsx maps them when they run.
const packagePaths = { tsconfigPaths: true };

export default defineConfig({
  test: {
    projects: [
      {
        resolve: packagePaths,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'package',
          include: ['test/package/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        resolve: packagePaths,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          // The fault-injection run starts and kills servers of its own: it runs after the other
          // projects (a higher group), one file at a time, so that it competes for the CPU with
          // nothing else.
          name: 'chaos',
          include: ['test/chaos/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});

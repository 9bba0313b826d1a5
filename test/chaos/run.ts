/**
 * `npm run chaos -- [--minutes N] [--seed S] [--out DIR] [--quiet] [--redis-without-persistence]`:
 * a fault-injection run on a cluster of its own (default 5 minutes). The seed (random unless
 * given) is printed first; pass it back to replay the same schedule. Exits 1 when any invariant
 * broke, keeping the histories under `--out` (default: the system's temporary directory).
 * `--redis-without-persistence` runs Redis as the integration tests do, losing every key on a
 * restart (a documented limit of the session store and Redis fencing).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomSeed, runChaos } from './driver.js';
import { chaosWorkloads } from './suite.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    seed: { type: 'string' },
    out: { type: 'string', default: join(tmpdir(), 'causeway-chaos') },
    quiet: { type: 'boolean', default: false },
    'redis-without-persistence': { type: 'boolean', default: false },
  },
});

const minutes = Number(values.minutes);
const seed = values.seed === undefined ? randomSeed() : Number(values.seed);
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error(`--minutes must be a positive number, got ${values.minutes}`);
  process.exit(2);
}
if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
  console.error(`--seed must be an integer in [0, 2^32), got ${values.seed}`);
  process.exit(2);
}

// Ctrl-C: exit through 'exit' handlers, which stop the servers and SIGKILL child processes.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const result = await runChaos({
  seed,
  durationMs: Math.round(minutes * 60_000),
  workloads: chaosWorkloads('long'),
  outDir: values.out,
  verbose: !values.quiet,
  redisAppendOnly: !values['redis-without-persistence'],
});
process.exit(result.ok ? 0 : 1);

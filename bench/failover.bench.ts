/**
 * Following the primary: time from a promotion to the first write the new primary accepts
 * through a routed pool given both nodes as primary candidates (`primary: [a, b]`).
 *
 * A primary and its streaming standby of their own. One writer inserts through the pool back to
 * back (5 ms pause after a failure). Each trial is a switchover: the primary stops fast, the
 * standby is promoted (`pg_promote(true)`), and the clock runs from the promotion's start and
 * from its return to the first write acknowledged by the promoted node; then the old primary
 * rejoins as a standby and the next trial goes the other way. Failed writes are counted by
 * kind: NO_PRIMARY (refused without being sent), a refusal as read-only (25006: sent to a
 * read-only node), or another error (a connection cut by the stop).
 *
 * Run: npm run bench -- failover   (starts its own servers; BENCH_TRIALS switchovers per
 * setting, default 6)
 */
import pg from 'pg';
import { createReplicatedPool } from '../adapters/pg/replicated-pool.js';
import { isCausewayError } from '../src/errors.js';
import { startPostgresPrimary, startReplica } from '../test/harness/cluster.js';
import { demote, promote } from '../test/harness/failover.js';
import { markdownTable, writeResults } from './util.js';

// A timer that keeps the process alive (the library's are unref'd, and a failover can leave no
// socket open for a moment).
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TRIALS = Number(process.env['BENCH_TRIALS'] ?? 6);
if (!Number.isInteger(TRIALS) || TRIALS < 1) throw new Error('BENCH_TRIALS must be >= 1');

interface Trial {
  fromStartMs: number;
  fromReturnMs: number;
  noPrimary: number;
  readOnly: number;
  other: number;
}

const settings = [
  { label: 'defaults (checks every 1000 ms, 100 ms while no primary)', options: {} },
  {
    label: 'pollIntervalMs 250, failoverPollIntervalMs 25',
    options: { pollIntervalMs: 250, failoverPollIntervalMs: 25 },
  },
] as const;

const a = await startPostgresPrimary({ name: 'bench-failover-a' });
const b = await startReplica(a, { name: 'bench-failover-b' });
const results: { label: string; trials: Trial[] }[] = [];
try {
  const admin = new pg.Client({ connectionString: a.url });
  await admin.connect();
  await admin.query('CREATE TABLE bench_failover (id bigserial PRIMARY KEY, at timestamptz)');
  await admin.end();
  let [primary, standby] = [a, b] as const as [typeof a, typeof a];
  for (const { label, options } of settings) {
    const pool = createReplicatedPool({
      primary: [a.url, b.url],
      replicas: [],
      replicaSetOptions: options,
    });
    pool.on('error', () => {});
    await pool.ready();
    const trials: Trial[] = [];
    for (let i = 0; i < TRIALS; i++) {
      let stop = false;
      let firstOnNew: number | undefined;
      const counts = { noPrimary: 0, readOnly: 0, other: 0 };
      const target = standby.port;
      const writer = (async () => {
        while (!stop) {
          try {
            const { rows } = await pool.query<{ port: number }>(
              'INSERT INTO bench_failover (at) VALUES (now()) RETURNING inet_server_port() AS port',
            );
            if (rows[0]?.port === target && firstOnNew === undefined) {
              firstOnNew = performance.now();
            }
          } catch (error) {
            if (isCausewayError(error, 'NO_PRIMARY')) {
              const cause = (error as Error).cause as { code?: string } | undefined;
              if (cause?.code === '25006') counts.readOnly += 1;
              else counts.noPrimary += 1;
            } else if ((error as { code?: string }).code === '25006') counts.readOnly += 1;
            else counts.other += 1;
            await sleep(5);
          }
        }
      })();
      await sleep(300);
      await primary.stop();
      const started = performance.now();
      await promote(standby);
      const returned = performance.now();
      while (firstOnNew === undefined) await sleep(1);
      stop = true;
      await writer;
      trials.push({
        fromStartMs: firstOnNew - started,
        fromReturnMs: firstOnNew - returned,
        ...counts,
      });
      await demote(primary, standby);
      [primary, standby] = [standby, primary];
    }
    await pool.end();
    results.push({ label, trials });
  }
} finally {
  await Promise.allSettled([b.stop(), a.stop()]);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
};
const ms = (value: number) => `${Math.round(value)} ms`;
console.log(
  `### Promotion to the first write accepted by the new primary (${TRIALS} switchovers each)\n`,
);
console.log(
  markdownTable(
    [
      'setting',
      'from pg_promote() called: median',
      'max',
      // pg_promote(true) polls for the end of recovery: the pool may find the new primary first.
      'from pg_promote() returned: median',
      'max',
      'writes failed NO_PRIMARY (not sent)',
      'sent to a read-only node',
      'other errors',
    ],
    results.map(({ label, trials }) => {
      const start = trials.map((t) => t.fromStartMs);
      const back = trials.map((t) => t.fromReturnMs);
      const total = (field: 'noPrimary' | 'readOnly' | 'other') =>
        trials.reduce((sum, trial) => sum + trial[field], 0);
      return [
        label,
        ms(median(start)),
        ms(Math.max(...start)),
        ms(median(back)),
        ms(Math.max(...back)),
        total('noPrimary'),
        total('readOnly'),
        total('other'),
      ];
    }),
  ),
);
writeResults('failover', { trials: TRIALS, results });

/**
 * Scaling out: sessions over two PostgreSQL clusters, session token size by number of clusters,
 * and a Redis Cluster master failover during a fencing workload.
 *
 * 1. Two independent clusters (a primary and one streaming replica each, applying commits
 *    BENCH_LAG ms late), simulated interactive users each using both and switching cluster on
 *    half of their operations (bench/clusters-workload.ts). Run twice with the same seed: with
 *    per-stream floors, and with the session as it was before (one stream's floors: each switch
 *    sends the read to the leader and drops the floors). The history checker counts violations.
 * 2. Token length for a session with both floors on 1, 2, 4 and 8 clusters (19-digit system ids).
 * 3. A local Redis Cluster (three masters, one replica each): an acquire/check/release loop on one
 *    resource while the replica of its master takes over (`CLUSTER FAILOVER`, `... TAKEOVER`),
 *    without and with `waitForReplicas`; tokens not above all before them are counted.
 *
 * Run: npm run bench -- clusters   (starts its own servers; BENCH_SECONDS per run, default 20;
 * BENCH_LAG, default 1000 ms; BENCH_SEED, default 1; BENCH_TRIALS failovers per case, default 5)
 */
import { Cluster } from 'ioredis';
import { SessionContext } from '../src/session/context.js';
import { SessionTokens } from '../src/session/token.js';
import { startPostgresPrimary, startReplica } from '../test/harness/cluster.js';
import { startRedisCluster } from '../test/harness/redis-cluster.js';
import { type ClusterNodes, type ClustersRun, offload, runClusters } from './clusters-workload.js';
import { type FailoverKind, type FailoverTrial, failoverTrial } from './redis-failover.js';
import { markdownTable, writeResults } from './util.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 20);
const LAG_MS = Number(process.env['BENCH_LAG'] ?? 1000);
const SEED = Number(process.env['BENCH_SEED'] ?? 1);
const TRIALS = Number(process.env['BENCH_TRIALS'] ?? 5);
const SESSIONS = 32;
if (!(SECONDS > 0) || !(LAG_MS >= 0) || !Number.isInteger(SEED) || !(TRIALS >= 1)) {
  throw new Error('BENCH_SECONDS > 0, BENCH_LAG >= 0, BENCH_SEED integer, BENCH_TRIALS >= 1');
}

const percent = (share: number) => `${(share * 100).toFixed(1)} %`;

// 1. Two clusters.
const servers = [];
const clusters: ClusterNodes[] = [];
for (const name of ['A', 'B']) {
  const primary = await startPostgresPrimary({ name: `clusters-${name}` });
  const replica = await startReplica(primary, {
    name: `clusters-${name}-replica`,
    delayMs: LAG_MS,
  });
  servers.push(primary, replica);
  clusters.push({
    name,
    primaryUrl: primary.url,
    replicas: [{ name: 'replica', url: replica.url }],
  });
}
const runs: { label: string; run: ClustersRun }[] = [];
const variants = [
  { label: 'floors per stream (this release)', mode: 'per-stream', on: clusters },
  { label: 'one stream (before)', mode: 'single-stream', on: clusters },
  { label: 'every session on cluster A only', mode: 'per-stream', on: clusters.slice(0, 1) },
] as const;
try {
  for (const { label, mode, on } of variants) {
    const run = await runClusters({
      clusters: on,
      mode,
      table: 'clusters_registers',
      sessions: SESSIONS,
      seconds: SECONDS,
      seed: SEED,
      switchShare: 0.5,
    });
    runs.push({ label, run });
  }
} finally {
  await Promise.allSettled(servers.reverse().map((server) => server.stop()));
}
console.log(
  `### Sessions over two clusters: ${SESSIONS} interactive sessions, ${SECONDS} s, seed ${SEED}, ` +
    `each cluster a primary and one replica applying ${LAG_MS} ms late, a switch of cluster on half ` +
    'of the operations\n',
);
console.log(
  markdownTable(
    [
      'session',
      'cluster',
      'reads',
      'served by its replica',
      'read-your-writes violations',
      'monotonic-read violations',
      'errors',
    ],
    runs.flatMap(({ label, run }) =>
      Object.entries(run.byCluster).map(([name, counts]) => [
        label,
        name,
        counts.reads,
        percent(offload(counts)),
        run.check.counts['read-your-writes'],
        run.check.counts['monotonic-reads'],
        run.errors,
      ]),
    ),
  ),
);

// 2. Token size.
const tokens = new SessionTokens({ secret: 'x'.repeat(32) });
const tokenSizes = [1, 2, 4, 8].map((count) => {
  const session = new SessionContext();
  for (let i = 0; i < count; i++) {
    const stream = String(7301234567890123456n + BigInt(i));
    session.noteWrite({ stream, epoch: 1, lsn: 0x1_6b37_4d48n });
    session.noteRead({ stream, epoch: 1, lsn: 0x1_6b37_5000n });
  }
  return { clusters: count, characters: tokens.issue(session.state).length };
});
console.log('\n### Session token length (16-character id, both floors on each cluster)\n');
console.log(
  markdownTable(
    ['clusters', 'characters'],
    tokenSizes.map((s) => [s.clusters, s.characters]),
  ),
);

// 3. Redis Cluster failover.
const redisCluster = await startRedisCluster();
const redis = new Cluster([...redisCluster.seeds]);
const cases: { kind: FailoverKind; wait: boolean }[] = [
  { kind: 'graceful', wait: false },
  { kind: 'takeover', wait: false },
  { kind: 'lagging-takeover', wait: false },
  { kind: 'lagging-takeover', wait: true },
];
const FAILOVER_COMMANDS: Record<FailoverKind, string> = {
  graceful: 'CLUSTER FAILOVER',
  takeover: 'CLUSTER FAILOVER TAKEOVER',
  'lagging-takeover': 'TAKEOVER, replication link cut 200 ms before',
};
const failovers: {
  kind: FailoverKind;
  wait: boolean;
  trials: FailoverTrial[];
  unfinished: string[];
}[] = [];
try {
  let n = 0;
  for (const { kind, wait } of cases) {
    const trials: FailoverTrial[] = [];
    const unfinished: string[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const options = wait ? { replicas: 1, timeoutMs: 100 } : undefined;
      try {
        trials.push(await failoverTrial(redisCluster, redis, `bench-${n++}`, kind, options));
      } catch (error) {
        // Reported, not hidden: a trial whose loop stalled after the switch.
        unfinished.push(String(error));
        await redisCluster.waitUntilStable();
      }
    }
    failovers.push({ kind, wait, trials, unfinished });
  }
} finally {
  redis.disconnect();
  await redisCluster.stop();
}
const sum = (trials: FailoverTrial[], field: 'granted' | 'back' | 'errors') =>
  trials.reduce((total, trial) => total + trial[field], 0);
console.log(
  `\n### Redis Cluster master failover during acquire/check/release on one resource (${TRIALS} trials each)\n`,
);
console.log(
  markdownTable(
    [
      'failover',
      'waitForReplicas',
      'tokens granted',
      'not above every earlier token',
      'trials with one',
      'failed calls',
      'trials not finished',
    ],
    failovers.map(({ kind, wait, trials, unfinished }) => [
      FAILOVER_COMMANDS[kind],
      wait ? '{ replicas: 1, timeoutMs: 100 }' : 'none',
      sum(trials, 'granted'),
      sum(trials, 'back'),
      trials.filter((trial) => trial.back > 0).length,
      sum(trials, 'errors'),
      unfinished.length,
    ]),
  ),
);

writeResults('clusters', {
  settings: { seconds: SECONDS, lagMs: LAG_MS, seed: SEED, sessions: SESSIONS, trials: TRIALS },
  runs: runs.map(({ label, run }) => ({
    label,
    mode: run.mode,
    byCluster: run.byCluster,
    counts: run.check.counts,
    errors: run.errors,
  })),
  tokenSizes,
  failovers,
});

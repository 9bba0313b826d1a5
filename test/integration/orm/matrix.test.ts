// The ORM matrix: each ORM over the routed pool, in a child process of its own (scenario.ts),
// on the primary and the replica that applies 1.5 s late. Each must read its own writes, keep
// its transactions on the primary, stream where it can, send most reads to the replica once it
// has caught up, leave no connection behind and let its process exit by itself.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../harness/env.js';
import { type ChildResult, runTsx } from '../../support/child-process.js';
import type { ScenarioReport } from './scenario.js';
import { tableFor } from './scenario.js';

const env = testEnv();
/** A child that has not exited by itself after this long is killed, and its ORM fails. */
const EXIT_BOUND_MS = 45_000;
/** Children run two at a time: the machine has two cores and tsx plus an ORM is CPU-heavy. */
const CONCURRENCY = 2;

interface OrmCase {
  readonly orm: string;
  readonly streams: boolean;
}
const ORMS: readonly OrmCase[] = [
  { orm: 'pg', streams: true },
  { orm: 'kysely', streams: true },
  { orm: 'drizzle', streams: false },
  { orm: 'knex', streams: true },
  { orm: 'typeorm', streams: true },
  { orm: 'sequelize', streams: false },
  { orm: 'mikro-orm', streams: true },
  { orm: 'prisma', streams: false },
];

let admin: pg.Pool;
const runs = new Map<string, Promise<{ result: ChildResult; appName: string; ms: number }>>();

/** Starts `task` once fewer than CONCURRENCY tasks run. */
const queue: (() => void)[] = [];
let running = 0;
async function limited<T>(task: () => Promise<T>): Promise<T> {
  if (running >= CONCURRENCY) await new Promise<void>((resolve) => queue.push(resolve));
  running++;
  try {
    return await task();
  } finally {
    running--;
    queue.shift()?.();
  }
}

beforeAll(async () => {
  // `npm test` generates the Prisma client before type-checking; a direct vitest run may not have.
  if (
    !existsSync(
      fileURLToPath(new URL('../../../examples/orm/prisma/generated/client.ts', import.meta.url)),
    )
  ) {
    execFileSync('npm', ['run', 'orm:generate'], { stdio: 'ignore' });
  }
  admin = new pg.Pool({ connectionString: env.primaryUrl, max: 2 });
  for (const { orm } of ORMS) {
    const table = tableFor(orm);
    await admin.query(`DROP TABLE IF EXISTS ${table}`);
    await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);
  }
  // The lagging replica must have the tables before a scenario reads it.
  const lagging = new pg.Client({ connectionString: env.laggingReplicaUrl });
  await lagging.connect();
  try {
    for (const { orm } of ORMS) {
      while (
        (await lagging.query('SELECT to_regclass($1) AS t', [tableFor(orm)])).rows[0].t === null
      ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    await lagging.end();
  }
  // The scenarios start at once, in the background; each test awaits its own.
  for (const { orm } of ORMS) {
    const appName = `causeway-orm-${orm}-${randomBytes(4).toString('hex')}`;
    const file = fileURLToPath(new URL('./scenario-child.ts', import.meta.url));
    runs.set(
      orm,
      limited(async () => {
        const started = performance.now();
        const result = await runTsx(file, [orm], {
          env: { ORM_APP_NAME: appName },
          timeoutMs: EXIT_BOUND_MS,
        });
        return { result, appName, ms: performance.now() - started };
      }),
    );
  }
});

afterAll(async () => {
  await Promise.allSettled(runs.values());
  for (const { orm } of ORMS) await admin.query(`DROP TABLE IF EXISTS ${tableFor(orm)}`);
  await admin.end();
});

/** Connections still open under `appName` on `url`, after the server had a moment to notice. */
async function leftBehind(url: string, appName: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (let attempt = 0; ; attempt++) {
      const { rows } = await client.query(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [appName],
      );
      // A backend leaves pg_stat_activity shortly after its client disconnected.
      if (rows[0].n === 0 || attempt === 20) return rows[0].n;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await client.end();
  }
}

describe.each(ORMS)('$orm over the routed pool', ({ orm, streams }) => {
  it('passes every check and exits by itself, leaving no connection', async () => {
    const { result, appName } = await runs.get(orm)!;
    expect(result.signal, `killed after ${EXIT_BOUND_MS} ms: did not exit by itself`).toBeNull();
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as ScenarioReport;

    // Read-your-writes, while the replica provably had not applied the write.
    expect(report.readYourWrites.staleOnReplica).toBe(true);
    expect(report.readYourWrites.elapsedMs).toBeLessThan(env.replicaDelayMs);
    expect(report.readYourWrites.seen).toBe('ryw');
    expect(report.readYourWrites.seenBesideOtherSession).toBe('ryw');

    // The transaction: every statement on the primary, on one backend, in one transaction,
    // invisible to another session until committed, and a rollback leaves nothing.
    const { probes } = report.transaction;
    expect(probes).toHaveLength(2);
    for (const probe of probes) {
      expect(probe.recovery).toBe(false);
      expect(probe.xid).not.toBeNull();
    }
    expect(probes[1]!.pid).toBe(probes[0]!.pid);
    expect(probes[1]!.xid).toBe(probes[0]!.xid);
    expect(report.transaction.seenByOtherSession).toBeUndefined();
    expect(report.transaction.onPrimaryBeforeCommit).toBe(false);
    expect(report.transaction.seenAfterCommit).toBe('tx');
    expect(report.transaction.rolledBackRowOnPrimary).toBe(false);

    if (streams) {
      expect(report.stream).not.toBeNull();
      expect(report.stream!.streamed).toEqual(report.stream!.expected);
    } else {
      expect(report.stream).toBeNull();
    }

    // After the replica caught up: the reads reached it (an ORM may add statements of its own,
    // so the share is of the reads asked for).
    expect(report.offload.replicaReads / report.offload.reads).toBeGreaterThanOrEqual(0.8);

    expect(await leftBehind(env.primaryUrl, appName)).toBe(0);
    expect(await leftBehind(env.laggingReplicaUrl, appName)).toBe(0);
  });
});

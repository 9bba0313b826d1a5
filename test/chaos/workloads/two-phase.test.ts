import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../../src/util/timers.js';
import { aimed, chaosContext, type PrivateServers, privateServers, until } from './fixtures.js';
import { type KillMode, twoPhaseWorkload } from './two-phase.js';

const SEED = 20_240_601;

describe('two-phase chaos workload (private servers)', () => {
  let servers: PrivateServers;

  beforeAll(async () => {
    servers = await privateServers('chaos-2pc', { primary2: true });
  });

  afterAll(async () => {
    await servers?.stop();
  });

  it('stays all-or-nothing while its coordinator is killed at each step of every path and a participant restarts', async () => {
    const ctx = chaosContext(servers.cluster, SEED);
    const workload = twoPhaseWorkload();
    const [kill] = workload.faults!;
    await workload.start(ctx);
    const run = async (mode: KillMode) => {
      await sleep(400);
      await kill!.inject(aimed(ctx, mode));
    };
    await run('after-decision');
    await run('after-prepare:perms');
    // A participant crashes (prepared branches must survive) while transactions run.
    await sleep(300);
    await servers.cluster.primary2.crash();
    await sleep(300);
    await servers.cluster.primary2.start();
    await run('after-commit:users');
    await run('any-moment');
    await run('after-prepare:users');
    // The optimizations' own steps (the child runs an optimized, a classic and a background-phase-two coordinator).
    await run('before-local-commit');
    await run('after-read-only:users');
    await run('after-local-commit');
    // Phase two in the background: killed after the caller was told "committed".
    await run('background-phase-two');
    await sleep(400);
    await workload.stop();
    const report = await workload.verify();
    const { stats } = workload;

    expect(report.failures, ctx.events.join('\n')).toEqual([]);
    expect(report.lostWrites).toBe(0);
    expect(report.violations).toBe(0);
    // The faults really happened: kills at the steps, transactions left in doubt by them, and
    // recovery resolved them both ways.
    expect(stats.kills).toBe(9);
    expect(stats.killsAtStep).toBeGreaterThanOrEqual(7);
    expect(stats.coordinatorStarts).toBe(10);
    expect(stats.inDoubtAfterKills).toBeGreaterThanOrEqual(2);
    expect(stats.inDoubtCommitted).toBeGreaterThanOrEqual(1);
    expect(stats.inDoubtRolledBack).toBeGreaterThanOrEqual(1);
    expect(stats.committed).toBeGreaterThan(0);
    expect(report.operations).toBe(stats.transactions);
  });

  it('verify() reports a half-applied transaction, a stray row and a leftover prepared transaction', async () => {
    const ctx = chaosContext(servers.cluster, SEED + 1);
    const workload = twoPhaseWorkload();
    await workload.start(ctx);
    await until(() => workload.stats.committed >= 3, 'committed transactions');
    await workload.stop();

    const users = new pg.Pool({ connectionString: servers.cluster.primary.url, max: 2 });
    const perms = new pg.Pool({ connectionString: servers.cluster.primary2.url, max: 2 });
    const orphan = 'chaos-test-orphan';
    try {
      const { table } = workload.names;
      const { rows } = await users.query(`SELECT gid FROM ${table} LIMIT 1`);
      const committed = String(rows[0].gid);
      await perms.query(`DELETE FROM ${table} WHERE gid = $1`, [committed]);
      const stray = 'cw:someone-else:00000000000000000000000000000000';
      for (const pool of [users, perms]) {
        await pool.query(`INSERT INTO ${table} VALUES ($1, 0, 0)`, [stray]);
      }
      const client = await perms.connect();
      await client.query('BEGIN');
      await client.query('SELECT 1');
      await client.query(`PREPARE TRANSACTION '${orphan}'`);
      client.release();

      const report = await workload.verify();
      expect(report.lostWrites).toBeGreaterThanOrEqual(1);
      expect(report.failures).toEqual(
        expect.arrayContaining([
          `half-applied: ${committed} only in users`,
          `row of a transaction no client began: ${stray}`,
          `pg_prepared_xacts on primary2 not empty: ${orphan}`,
        ]),
      );
    } finally {
      await perms.query(`ROLLBACK PREPARED '${orphan}'`).catch(() => {});
      await Promise.all([users.end(), perms.end()]);
    }
  });
});

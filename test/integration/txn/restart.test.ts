import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { CausewayError } from '../../../src/errors.js';
import { TwoPhaseCoordinator, type TwoPhaseStep } from '../../../src/txn/coordinator.js';
import { coordinatorPrefix } from '../../../src/txn/gid.js';
import { type PgServer, startPostgresPrimary } from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';
import { namespace, pool } from './helpers.js';

// A private server: these tests stop and crash it, which the shared ones must never see.
describe('2PC against a participant whose PostgreSQL restarts', () => {
  const names = namespace('restart');
  let server: PgServer;

  beforeAll(async () => {
    server = await startPostgresPrimary({
      name: 'txn-private',
      settings: { max_prepared_transactions: 0 },
    });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('refuses max_prepared_transactions = 0 with a CONFIG error that says what to change', async () => {
    const p = pool(server.url, 4);
    const coordinator = new TwoPhaseCoordinator({
      coordinatorId: names.coordinatorId,
      log: new PgDecisionLog({ pool: p, table: names.logTable }),
      participants: { only: new PgParticipant({ pool: p }) },
    });
    let error: unknown;
    try {
      await coordinator.transaction(async (tx) => {
        await tx.participant('only').query('SELECT 1');
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CausewayError);
    expect((error as CausewayError).code).toBe('CONFIG');
    expect((error as CausewayError).message).toMatch(/max_prepared_transactions is 0/);
    expect((error as CausewayError).message).toMatch(/restart PostgreSQL/);
    // A pool larger than the setting is refused too.
    await p.query('ALTER SYSTEM SET max_prepared_transactions = 3');
    await p.end();
    await server.stop();
    await server.start();
    const big = pool(server.url, 4);
    await expect(new PgParticipant({ pool: big }).begin()).rejects.toMatchObject({
      code: 'CONFIG',
      details: { maxPreparedTransactions: 3, poolSize: 4 },
    });
    await big.query('ALTER SYSTEM SET max_prepared_transactions = 20');
    await big.end();
    await server.stop();
    await server.start();
  });

  const steps: TwoPhaseStep[] = ['after-prepare', 'after-decision'];
  for (const crashAt of steps) {
    it(`commits once the participant is back after a crash at ${crashAt}`, async () => {
      const users = pool(testEnv().primaryUrl, 4);
      const perms = pool(server.url, 4);
      const table = `${names.table}_${crashAt.replace('-', '_')}`;
      for (const p of [users, perms]) await p.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
      let restarted: Promise<void> | undefined;
      const coordinator = new TwoPhaseCoordinator({
        coordinatorId: names.coordinatorId,
        log: new PgDecisionLog({ pool: users, table: names.logTable }),
        participants: {
          users: new PgParticipant({ pool: users }),
          perms: new PgParticipant({ pool: perms }),
        },
        commitWaitMs: 60_000,
        retryMaxDelayMs: 200,
        hooks: {
          onStep: async (step, info) => {
            if (step !== crashAt || (info.participant ?? 'perms') !== 'perms') return;
            // Like a power cut: prepared transactions must survive it (they are in the WAL).
            await server.crash();
            restarted = new Promise((resolve) => setTimeout(resolve, 300)).then(() =>
              server.start(),
            );
            if (step === 'after-prepare') await restarted;
          },
        },
      });
      try {
        const { outcome } = await coordinator.transaction(async (tx) => {
          await tx.participant('users').query(`INSERT INTO ${table} VALUES (1)`);
          await tx.participant('perms').query(`INSERT INTO ${table} VALUES (1)`);
        });
        expect(outcome).toBe('committed');
        await restarted;
        for (const p of [users, perms]) {
          expect((await p.query(`SELECT id FROM ${table}`)).rows).toEqual([{ id: 1 }]);
          const left = await p.query(
            'SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, $1)',
            [coordinatorPrefix(names.coordinatorId)],
          );
          expect(left.rows).toEqual([]);
        }
      } finally {
        await coordinator.close();
        await restarted;
        for (const p of [users, perms]) await p.query(`DROP TABLE IF EXISTS ${table}`);
        await users.query(`DROP TABLE IF EXISTS ${names.logTable}`);
        await users.end();
        await perms.end();
      }
    });
  }

  it('aborts cleanly when the log participant crashes before committing the decision with its branch', async () => {
    // The log lives on the restarting server, on the same pool as its participant: that
    // participant is not prepared, and its commit carries the decision.
    const users = pool(testEnv().primaryUrl, 4);
    const perms = pool(server.url, 4);
    const table = `${names.table}_log_crash`;
    for (const p of [users, perms]) await p.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    let restarted: Promise<void> | undefined;
    const steps: string[] = [];
    const coordinator = new TwoPhaseCoordinator({
      coordinatorId: names.coordinatorId,
      log: new PgDecisionLog({ pool: perms, table: names.logTable }),
      participants: {
        users: new PgParticipant({ pool: users }),
        perms: new PgParticipant({ pool: perms }),
      },
      commitWaitMs: 60_000,
      retryMaxDelayMs: 200,
      hooks: {
        onStep: async (step) => {
          steps.push(step);
          if (step !== 'before-local-commit') return;
          await server.crash();
          restarted = new Promise((resolve) => setTimeout(resolve, 300)).then(() => server.start());
        },
      },
    });
    try {
      const error = await coordinator
        .transaction(async (tx) => {
          await tx.participant('users').query(`INSERT INTO ${table} VALUES (1)`);
          await tx.participant('perms').query(`INSERT INTO ${table} VALUES (1)`);
        })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      // The branch died with the server; the abort recorded once it was back holds.
      expect(error).toMatchObject({ code: 'TXN_ABORTED' });
      expect(steps).toContain('before-local-commit');
      await restarted;
      for (const p of [users, perms]) {
        expect((await p.query(`SELECT id FROM ${table}`)).rows).toEqual([]);
        const left = await p.query('SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, $1)', [
          coordinatorPrefix(names.coordinatorId),
        ]);
        expect(left.rows).toEqual([]);
      }
    } finally {
      await coordinator.close();
      await restarted;
      for (const p of [users, perms]) await p.query(`DROP TABLE IF EXISTS ${table}`);
      await perms.query(`DROP TABLE IF EXISTS ${names.logTable}`);
      await users.end();
      await perms.end();
    }
  });
});

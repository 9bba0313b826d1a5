import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLeaseManager } from '../../../adapters/memory/fencing.js';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { CausewayError, isCausewayError } from '../../../src/errors.js';
import { TwoPhaseCoordinator } from '../../../src/txn/coordinator.js';
import { branchGid } from '../../../src/txn/gid.js';
import type { HeuristicEvent } from '../../../src/txn/recovery.js';
import { testEnv } from '../../harness/env.js';
import { namespace, type Pair, pair, pool } from './helpers.js';

async function rejection(promise: Promise<unknown>): Promise<CausewayError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CausewayError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('TwoPhaseCoordinator over two PostgreSQL primaries', () => {
  let db: Pair;
  let coordinator: TwoPhaseCoordinator;

  beforeAll(async () => {
    const env = testEnv();
    db = await pair(
      env.primaryUrl,
      env.primary2Url,
      namespace('pg'),
      'id int PRIMARY KEY, email text, CONSTRAINT email_unique UNIQUE (email) DEFERRABLE INITIALLY DEFERRED',
    );
    coordinator = db.coordinator({ prepareTimeoutMs: 5_000 });
  });

  afterAll(async () => {
    await coordinator.close();
    expect(await db.prepared()).toEqual([]);
    await db.drop();
  });

  const insert = (id: number, email = `u${id}@example.com`) =>
    [`INSERT INTO ${db.table} (id, email) VALUES ($1, $2)`, [id, email]] as const;

  it('commits the signup in both databases and logs the decision', async () => {
    const { gid, outcome, result } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query(...insert(1));
      const { rows } = await tx
        .participant('perms')
        .query<{ id: number }>(`${insert(1)[0]} RETURNING id`, insert(1)[1]);
      return rows[0]?.id;
    });
    expect(outcome).toBe('committed');
    expect(result).toBe(1);
    expect(await db.rows()).toEqual({ users: [1], perms: [1] });
    expect((await db.decisions()).find((d) => d.gid === gid)?.decision).toBe('commit');
    expect(await db.prepared()).toEqual([]);
    const report = await coordinator.recover();
    expect(report.forgotten).toContain(gid);
  });

  it('aborts both branches on a unique violation in one', async () => {
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(2));
        await tx.participant('perms').query(...insert(1, 'other@example.com'));
      }),
    );
    expect(error.code).toBe('TXN_ABORTED');
    expect((error.cause as { code?: string }).code).toBe('23505');
    expect((await db.rows()).users).not.toContain(2);
    expect(await db.prepared()).toEqual([]);
  });

  it('aborts both branches when a deferred constraint fails at PREPARE', async () => {
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(3));
        await tx.participant('perms').query(...insert(3, 'same@example.com'));
        await tx.participant('perms').query(...insert(4, 'same@example.com'));
      }),
    );
    expect(error.code).toBe('TXN_ABORTED');
    expect(error.message).toContain('did not prepare');
    expect((error.cause as CausewayError).details['sqlstate']).toBe('23505');
    const rows = await db.rows();
    expect(rows.users).not.toContain(3);
    expect(rows.perms).not.toContain(3);
    expect(await db.prepared()).toEqual([]);
  });

  it('refuses statements PostgreSQL cannot prepare before running them', async () => {
    for (const statement of [
      'CREATE TEMP TABLE scratch (a int)',
      'create global temporary table scratch (a int)',
      'SELECT 1 INTO TEMP scratch',
      'LISTEN channel',
      "NOTIFY channel, 'x'",
      "SELECT pg_notify('channel', 'x')",
      `DECLARE c CURSOR WITH HOLD FOR SELECT 1`,
      'SELECT pg_advisory_lock(1)',
    ]) {
      const error = await rejection(
        coordinator.transaction(async (tx) => {
          await tx.participant('users').query(...insert(5));
          await tx.participant('users').query(statement);
        }),
      );
      expect(error.code, statement).toBe('INVALID_INPUT');
    }
    // Words inside literals and comments are not statements.
    await coordinator.transaction(async (tx) => {
      await tx.participant('users').query(...insert(6, 'listen; create temp table @example.com'));
      await tx.participant('users').query('SELECT 1 -- NOTIFY x');
    });
    expect((await db.rows()).users).toContain(6);
    expect((await db.rows()).users).not.toContain(5);
  });

  it("maps PostgreSQL's own refusal at PREPARE to TXN_ABORTED", async () => {
    // pg_temp.* is a temporary table the text check does not see; PostgreSQL refuses it.
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(7));
        await tx.participant('perms').query('CREATE TABLE pg_temp.scratch (a int)');
      }),
    );
    expect(error.code).toBe('TXN_ABORTED');
    expect((error.cause as CausewayError).details['sqlstate']).toBe('0A000');
    expect((await db.rows()).users).not.toContain(7);
    expect(await db.prepared()).toEqual([]);
  });

  it('rejects an unknown participant and bad gids with typed errors, leaving nothing prepared', async () => {
    const unknown = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(8));
        await tx.participant('billing').query('SELECT 1');
      }),
    );
    expect(unknown.code).toBe('INVALID_INPUT');
    const participant = new PgParticipant({ pool: db.users });
    for (const gid of ["cw:x:1'; DROP TABLE users; --", `cw:${'x'.repeat(200)}`, '']) {
      expect((await rejection(participant.commitPrepared(gid))).code).toBe('INVALID_INPUT');
      expect((await rejection(participant.rollbackPrepared(gid))).code).toBe('INVALID_INPUT');
    }
    const branch = await participant.begin();
    expect((await rejection(branch.prepare("it's"))).code).toBe('INVALID_INPUT');
    await branch.rollback();
    expect(() => db.coordinator({ coordinatorId: 'c'.repeat(170) })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }) as Error,
    );
    expect(() => db.coordinator({ coordinatorId: "o'brien" })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }) as Error,
    );
    expect(await db.prepared()).toEqual([]);
    expect((await db.rows()).users).not.toContain(8);
  });

  it('reports a branch rolled back by hand after the decision as a heuristic outcome', async () => {
    const events: HeuristicEvent[] = [];
    const meddled = db.coordinator({
      onHeuristic: (event) => events.push(event),
      hooks: {
        onStep: async (step, { gid }) => {
          if (step === 'after-decision') {
            await db.perms.query(`ROLLBACK PREPARED '${branchGid(gid, 'perms')}'`);
          }
        },
      },
    });
    const error = await rejection(
      meddled.transaction(async (tx) => {
        await tx.participant('users').query(...insert(9));
        await tx.participant('perms').query(...insert(9));
      }),
    );
    expect(error.code).toBe('TXN_IN_DOUBT');
    expect(error.details['heuristic']).toBe(true);
    expect(events).toEqual([
      expect.objectContaining({ participant: 'perms', decision: 'commit', observed: 'aborted' }),
    ]);
    await db.users.query(`DELETE FROM ${db.table} WHERE id = 9`);
  });

  it('lists prepared branches with their age, owner, database and xid', async () => {
    const participant = new PgParticipant({ pool: db.users });
    const branch = await participant.begin();
    await branch.query(...insert(10));
    const gid = branchGid(`cw:${db.coordinatorId}:${'a'.repeat(32)}`, 'users');
    const { xid } = await branch.prepare(gid);
    const [listed] = await participant.listPrepared(`cw:${db.coordinatorId}:`);
    expect(listed).toMatchObject({ gid, xid, owner: 'postgres', database: 'postgres' });
    expect(listed?.ageMs).toBeGreaterThanOrEqual(0);
    expect(await participant.branchStatus(xid)).toBe('in progress');
    expect(await participant.rollbackPrepared(gid)).toBe(true);
    expect(await participant.rollbackPrepared(gid)).toBe(false);
    expect(await participant.branchStatus(xid)).toBe('aborted');
  });

  it('runs no statement of a branch rolled back while that statement was being checked', async () => {
    // fn starts a write and fails at once: the branch is rolled back (its connection returned)
    // while the write is still in its preparable check. It must not then run on that connection
    // (it would commit on its own, or inside whatever transaction the connection serves next).
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        void tx
          .participant('users')
          .query(...insert(77))
          .catch(() => {});
        throw new Error('fails at once');
      }),
    );
    expect(error.code).toBe('TXN_ABORTED');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await db.rows()).users).not.toContain(77);
  });

  it('keeps decisions write-once under concurrent writers', async () => {
    const log = new PgDecisionLog({ pool: db.users, table: db.logTable });
    const gid = `cw:${db.coordinatorId}:${'b'.repeat(32)}`;
    const records = await Promise.all(
      Array.from({ length: 20 }, (_, i) => log.record(gid, i % 2 ? 'commit' : 'abort', ['users'])),
    );
    expect(new Set(records.map((r) => r.decision)).size).toBe(1);
    await log.forget([gid]);
    expect(await log.get(gid)).toBeUndefined();
  });

  const races = [
    {
      name: 'decisions batched in a log of its own, recoverers under one lease',
      separateLog: true,
      lease: true,
    },
    {
      name: 'decisions committed with the log participant, mixed shapes, two recoverers without a lease',
      separateLog: false,
      lease: false,
    },
    {
      name: 'phase two in the background (acknowledged at the commit point), two recoverers without a lease',
      separateLog: false,
      lease: false,
      phaseTwo: 'background' as const,
    },
  ];
  for (const race of races) {
    it(`never rolls back what it committed while recovery races live transactions: ${race.name}`, async () => {
      // A log with a pool of its own never queues decisions behind open branches; on the
      // users pool, it is colocated with the users participant (decision committed with it).
      const logPool = race.separateLog ? pool(testEnv().primaryUrl, 4) : db.users;
      const log = new PgDecisionLog({ pool: logPool, table: db.logTable });
      // Recovery is told a far shorter prepare timeout than the live coordinator uses, and the
      // coordinator stalls at random at every step: recovery then presumes abort of live
      // transactions, and only the write-once log keeps every outcome whole.
      const live = db.coordinator({
        prepareTimeoutMs: 10_000,
        log,
        ...(race.separateLog ? { optimizations: { batchDecisions: true } } : {}),
        ...(race.phaseTwo === undefined ? {} : { phaseTwo: race.phaseTwo }),
        // Below the servers' max_prepared_transactions (20), so PREPARE never runs out of slots.
        maxConcurrentTransactions: race.separateLog ? 16 : 8,
        hooks: { onStep: () => new Promise((resolve) => setTimeout(resolve, Math.random() * 60)) },
      });
      // Recoverers stand for other processes: pools of their own, one lease between them (or
      // none: both recover at once).
      const leases = race.lease ? new MemoryLeaseManager() : undefined;
      const recoveryErrors: unknown[] = [];
      const recoveryPools = [testEnv().primaryUrl, testEnv().primary2Url].map((url) =>
        pool(url, 3),
      );
      const recoverers = [1, 2].map(
        () =>
          new TwoPhaseCoordinator({
            coordinatorId: db.coordinatorId,
            log,
            participants: {
              users: new PgParticipant({ pool: recoveryPools[0]! }),
              perms: new PgParticipant({ pool: recoveryPools[1]! }),
            },
            prepareTimeoutMs: 20,
            ...(leases === undefined ? {} : { leases }),
            recoveryLeaseTtlMs: 1_000,
            onRecoveryError: (error) => recoveryErrors.push(error),
          }),
      );
      for (const r of recoverers) r.startRecovery({ intervalMs: 2 });
      const base = race.separateLog ? 1_000 : race.phaseTwo === undefined ? 2_000 : 3_000;
      const ids = Array.from({ length: 60 }, (_, i) => base + i);
      // Mixed shapes: both databases written; users read and perms written; users alone.
      const shape = (id: number) => (race.separateLog ? 0 : id % 3);
      const outcomes = await Promise.all(
        ids.map((id) =>
          live
            .transaction(async (tx) => {
              if (shape(id) === 1) {
                await tx.participant('users').query(`SELECT count(*) FROM ${db.table}`);
              } else {
                await tx.participant('users').query(...insert(id));
              }
              if (shape(id) !== 2) await tx.participant('perms').query(...insert(id));
            })
            .then(
              () => 'committed' as const,
              (error: unknown) => {
                if (isCausewayError(error, 'TXN_ABORTED')) return 'aborted' as const;
                throw error;
              },
            ),
        ),
      );
      for (const r of recoverers) await r.close();
      await live.close();
      if (race.separateLog) await logPool.end();
      for (const p of recoveryPools) await p.end();
      const rows = await db.rows();
      for (const [i, id] of ids.entries()) {
        const expected = outcomes[i] === 'committed';
        if (shape(id) !== 1) expect(rows.users.includes(id), `users ${id}`).toBe(expected);
        if (shape(id) !== 2) expect(rows.perms.includes(id), `perms ${id}`).toBe(expected);
      }
      expect(outcomes.filter((o) => o === 'committed').length).toBeGreaterThan(0);
      expect(recoveryErrors).toEqual([]);
      expect(await db.prepared()).toEqual([]);
    });
  }
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { isCausewayError } from '../../../src/errors.js';
import { TwoPhaseCoordinator } from '../../../src/txn/coordinator.js';
import { testEnv } from '../../harness/env.js';
import { namespace, type Pair, pair, pool } from './helpers.js';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('2PC optimizations on PostgreSQL', () => {
  let db: Pair;
  const steps: string[] = [];
  const recordStep = {
    onStep: (step: string, info: { participant?: string }) =>
      void steps.push(`${step} ${info.participant ?? ''}`.trim()),
  };

  beforeAll(async () => {
    const env = testEnv();
    db = await pair(
      env.primaryUrl,
      env.primary2Url,
      namespace('opt'),
      'id int PRIMARY KEY, email text, CONSTRAINT email_unique UNIQUE (email) DEFERRABLE INITIALLY DEFERRED',
    );
  });

  afterAll(async () => {
    expect(await db.prepared()).toEqual([]);
    await db.drop();
  });

  const insert = (id: number, email = `u${id}@example.com`) =>
    [`INSERT INTO ${db.table} (id, email) VALUES ($1, $2)`, [id, email]] as const;

  it('one participant: a plain COMMIT, no prepare and no decision; a refusal at COMMIT aborts', async () => {
    steps.length = 0;
    const coordinator = db.coordinator({ hooks: recordStep });
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('perms').query(...insert(1));
    });
    expect(steps).toEqual([
      'before-prepare',
      'before-local-commit perms',
      'after-local-commit perms',
    ]);
    expect((await db.rows()).perms).toContain(1);
    expect((await db.decisions()).find((d) => d.gid === gid)).toBeUndefined();

    // A deferred constraint fails at COMMIT: the server rolled back, nothing is in doubt.
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('perms').query(...insert(2, 'same@example.com'));
        await tx.participant('perms').query(...insert(3, 'same@example.com'));
      }),
    );
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    expect((await db.rows()).perms).not.toContain(2);
    await coordinator.close();
  });

  it('read-only votes: a branch that only read ends at once; one whose SELECT wrote is a writer', async () => {
    steps.length = 0;
    const coordinator = db.coordinator({ hooks: recordStep, optimizations: { onePhase: false } });
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query(`SELECT count(*) FROM ${db.table}`);
      await tx.participant('perms').query(...insert(4));
    });
    expect(steps).toEqual([
      'before-prepare',
      'after-read-only users',
      'after-prepare perms',
      'after-decision',
      'after-commit perms',
    ]);
    expect((await db.decisions()).find((d) => d.gid === gid)).toMatchObject({ decision: 'commit' });

    // A SELECT whose CTE inserts: the command tag says SELECT, the server says an xid exists.
    steps.length = 0;
    await coordinator.transaction(async (tx) => {
      await tx
        .participant('users')
        .query(`WITH added AS (${insert(5)[0]} RETURNING id) SELECT id FROM added`, insert(5)[1]);
      await tx.participant('perms').query(...insert(5));
    });
    expect(steps).not.toContain('after-read-only users');
    expect(await db.rows()).toMatchObject({
      users: expect.arrayContaining([5]),
      perms: expect.arrayContaining([4, 5]),
    });
    await coordinator.recover();
    await coordinator.close();
  });

  it('commits the decision with the participant on the log pool: not prepared, decision in its commit', async () => {
    steps.length = 0;
    const coordinator = db.coordinator({ hooks: recordStep });
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query(...insert(6));
      await tx.participant('perms').query(...insert(6));
    });
    expect(steps).toEqual([
      'before-prepare',
      'after-prepare perms',
      'before-local-commit users',
      'after-decision',
      'after-commit perms',
    ]);
    expect((await db.decisions()).find((d) => d.gid === gid)).toMatchObject({ decision: 'commit' });
    expect((await coordinator.recover()).forgotten).toContain(gid);

    // Named explicitly, on a log with a pool of its own (same database).
    const logPool = pool(testEnv().primaryUrl, 2);
    steps.length = 0;
    const named = db.coordinator({
      hooks: recordStep,
      log: new PgDecisionLog({ pool: logPool, table: db.logTable }),
      logParticipant: 'users',
    });
    await named.transaction(async (tx) => {
      await tx.participant('users').query(...insert(7));
      await tx.participant('perms').query(...insert(7));
    });
    expect(steps).toContain('before-local-commit users');
    // Not colocated and not named: the decision is logged and both branches prepared.
    steps.length = 0;
    const apart = db.coordinator({
      hooks: recordStep,
      log: new PgDecisionLog({ pool: logPool, table: db.logTable }),
    });
    await apart.transaction(async (tx) => {
      await tx.participant('users').query(...insert(8));
      await tx.participant('perms').query(...insert(8));
    });
    expect(steps.filter((step) => step.startsWith('after-prepare')).sort()).toEqual([
      'after-prepare perms',
      'after-prepare users',
    ]);
    for (const c of [coordinator, named, apart]) await c.close();
    await logPool.end();
    expect(await db.rows()).toMatchObject({
      users: expect.arrayContaining([6, 7, 8]),
      perms: expect.arrayContaining([6, 7, 8]),
    });
  });

  it('a log creating its table on a pool its branches fill: created before they take connections', async () => {
    // Two transactions hold both connections of the log's pool for their branches; the log
    // table does not exist yet. Creating it at the commit would wait for a third connection.
    const env = testEnv();
    const [users, perms] = [pool(env.primaryUrl, 2), pool(env.primary2Url, 2)];
    const logTable = `${db.logTable}_fresh`;
    const coordinator = new TwoPhaseCoordinator({
      coordinatorId: `${db.coordinatorId}f`,
      log: new PgDecisionLog({ pool: users, table: logTable }),
      participants: {
        users: new PgParticipant({ pool: users }),
        perms: new PgParticipant({ pool: perms }),
      },
      transactionTimeoutMs: 5000,
    });
    try {
      const results = await Promise.all(
        [910, 911].map((id) =>
          coordinator.transaction(async (tx) => {
            await tx.participant('users').query(...insert(id));
            await tx.participant('perms').query(...insert(id));
          }),
        ),
      );
      expect(results.map((result) => result.outcome)).toEqual(['committed', 'committed']);
    } finally {
      await coordinator.close();
      await users.query(`DROP TABLE IF EXISTS ${logTable}`);
      await Promise.all([users.end(), perms.end()]);
    }
  });

  it('commit with the log: a refusal at its COMMIT rolls the prepared branches back', async () => {
    const coordinator = db.coordinator();
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(9, 'twice@example.com'));
        await tx.participant('users').query(...insert(10, 'twice@example.com'));
        await tx.participant('perms').query(...insert(9));
      }),
    );
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    const rows = await db.rows();
    expect(rows.users).not.toContain(9);
    expect(rows.perms).not.toContain(9);
    expect(await db.prepared()).toEqual([]);
    await coordinator.close();
  });

  it('commit with the log: an abort recovery recorded first makes the insert fail, and it aborts', async () => {
    const recovery = db.coordinator({ prepareTimeoutMs: 1 });
    const coordinator = db.coordinator({
      hooks: {
        onStep: async (step) => {
          if (step !== 'before-local-commit') return;
          // This coordinator stalls after preparing perms; recovery presumes abort meanwhile.
          await new Promise((resolve) => setTimeout(resolve, 20));
          const report = await recovery.recover();
          expect(report.presumedAborted).toHaveLength(1);
        },
      },
    });
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(11));
        await tx.participant('perms').query(...insert(11));
      }),
    );
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    const rows = await db.rows();
    expect(rows.users).not.toContain(11);
    expect(rows.perms).not.toContain(11);
    await coordinator.close();
    await recovery.close();
  });

  it('recordMany: one statement for a batch; an existing decision holds over the new one', async () => {
    const log = new PgDecisionLog({ pool: db.users, table: db.logTable });
    const gid = (c: string) => `cw:${db.coordinatorId}:${c.repeat(32)}`;
    await log.record(gid('c'), 'abort', ['users']);
    const records = await log.recordMany([
      { gid: gid('d'), decision: 'commit', participants: ['users', 'perms'] },
      { gid: gid('c'), decision: 'commit', participants: ['users', 'perms'] },
      { gid: gid('e'), decision: 'commit', participants: ['perms'] },
    ]);
    expect(records.map((r) => [r.gid, r.decision, r.participants])).toEqual([
      [gid('d'), 'commit', ['users', 'perms']],
      [gid('c'), 'abort', ['users']],
      [gid('e'), 'commit', ['perms']],
    ]);
    expect((await log.get(gid('e')))?.participants).toEqual(['perms']);
    await log.forget([gid('c'), gid('d'), gid('e')]);
  });

  it('batches concurrent decisions of a log apart from the participants', async () => {
    const logPool = pool(testEnv().primaryUrl, 2);
    const log = new PgDecisionLog({ pool: logPool, table: db.logTable });
    const batches: number[] = [];
    const recordMany = log.recordMany.bind(log);
    log.recordMany = (entries) => {
      batches.push(entries.length);
      return recordMany(entries);
    };
    const coordinator = db.coordinator({ log, optimizations: { batchDecisions: true } });
    const ids = Array.from({ length: 12 }, (_, i) => 100 + i);
    await Promise.all(
      ids.map((id) =>
        coordinator.transaction(async (tx) => {
          await tx.participant('users').query(...insert(id));
          await tx.participant('perms').query(...insert(id));
        }),
      ),
    );
    expect(Math.max(0, ...batches)).toBeGreaterThan(1);
    const rows = await db.rows();
    for (const id of ids)
      expect([rows.users.includes(id), rows.perms.includes(id)]).toEqual([true, true]);
    await coordinator.recover();
    await coordinator.close();
    await logPool.end();
  });
  it("phaseTwo 'background': resolves at the commit point, the prepared branch invisible until phase two; a clean close() leaves nothing prepared", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const coordinator = db.coordinator({
      phaseTwo: 'background',
      hooks: {
        onStep: async (step) => {
          if (step === 'background-phase-two') await held;
        },
      },
    });
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query(...insert(701));
      await tx.participant('perms').query(...insert(701));
    });
    // Acknowledged: users committed with the decision; perms still prepared, its row unseen.
    let rows = await db.rows();
    expect(rows.users).toContain(701);
    expect(rows.perms).not.toContain(701);
    expect(await db.prepared()).toEqual([expect.stringContaining(gid.split(':').at(-1)!)]);
    const closing = coordinator.close();
    release();
    await closing;
    rows = await db.rows();
    expect(rows.perms).toContain(701);
    expect(await db.prepared()).toEqual([]);

    // Many at once, closed right after they resolve: close() waits for every phase two.
    const busy = db.coordinator({ phaseTwo: 'background' });
    // Fewer than the pools' 10 connections: a new log checks its table on a connection of its own.
    const ids = Array.from({ length: 6 }, (_, i) => 710 + i);
    await Promise.all(
      ids.map((id) =>
        busy.transaction(async (tx) => {
          await tx.participant('users').query(...insert(id));
          await tx.participant('perms').query(...insert(id));
        }),
      ),
    );
    await busy.close();
    expect(await db.prepared()).toEqual([]);
    rows = await db.rows();
    for (const id of ids)
      expect(rows.perms.includes(id) && rows.users.includes(id), `${id}`).toBe(true);
  });
});

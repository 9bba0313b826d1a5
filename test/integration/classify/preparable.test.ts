import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausewayError } from '../../../src/errors.js';
import type { TwoPhaseCoordinator } from '../../../src/txn/coordinator.js';
import { testEnv } from '../../harness/env.js';
import { namespace, type Pair, pair } from '../txn/helpers.js';

// Issue 11, item 4: a branch that ended its own transaction (COMMIT, ROLLBACK...) made the
// coordinator's abort a lie: one database kept the row. The branch is now refused before the
// statement is sent, so the abort rolls back everything.

async function rejection(promise: Promise<unknown>): Promise<CausewayError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CausewayError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('2PC branches refuse transaction control and session effects, whatever the quoting', () => {
  let db: Pair;
  let coordinator: TwoPhaseCoordinator;

  beforeAll(async () => {
    const env = testEnv();
    db = await pair(env.primaryUrl, env.primary2Url, namespace('prep'));
    coordinator = db.coordinator({ prepareTimeoutMs: 5_000 });
  });

  afterAll(async () => {
    await coordinator.close();
    expect(await db.prepared()).toEqual([]);
    await db.drop();
  });

  it.each([
    'COMMIT',
    'ROLLBACK',
    'END',
    'SELECT 1; COMMIT',
    'COMMIT; BEGIN',
    'SELECT "pg_advisory_lock"(1)',
    'SELECT U&"pg_adv\\0069sory_lock"(2)',
  ])('%s is refused before PREPARE and nothing is kept', async (statement) => {
    const id = Math.floor(Math.random() * 1e9);
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(`INSERT INTO ${db.table} (id) VALUES ($1)`, [id]);
        await tx.participant('perms').query(`INSERT INTO ${db.table} (id) VALUES ($1)`, [id]);
        await tx.participant('users').query(statement);
      }),
    );
    expect(error.code).toBe('INVALID_INPUT');
    const rows = await db.rows();
    expect(rows.users).not.toContain(id);
    expect(rows.perms).not.toContain(id);
    // No advisory lock was taken on either server's pooled connections.
    const { rows: locks } = await db.users.query(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid IN (1, 2)",
    );
    expect(locks[0].n).toBe(0);
  });

  it('lets savepoints through and commits', async () => {
    const id = Math.floor(Math.random() * 1e9);
    await coordinator.transaction(async (tx) => {
      await tx.participant('users').query('SAVEPOINT before_insert');
      await tx.participant('users').query(`INSERT INTO ${db.table} (id) VALUES ($1)`, [id]);
      await tx.participant('users').query('RELEASE before_insert');
      await tx.participant('perms').query(`INSERT INTO ${db.table} (id) VALUES ($1)`, [id]);
    });
    const rows = await db.rows();
    expect(rows.users).toContain(id);
    expect(rows.perms).toContain(id);
  });
});

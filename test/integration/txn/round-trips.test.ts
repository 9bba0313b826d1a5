import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { TwoPhaseCoordinator } from '../../../src/txn/coordinator.js';
import { testEnv } from '../../harness/env.js';
import { namespace } from './helpers.js';

/** Every statement a client sends (`pg` sends one at a time: one per round trip). */
const sent: string[] = [];

class RecordingClient extends pg.Client {
  override query(...args: unknown[]): never {
    const [first] = args as [string | { text?: string }];
    sent.push(typeof first === 'string' ? first : String(first?.text));
    return (super.query as (...a: unknown[]) => never)(...args);
  }
}

/** Runs `fn` and returns the statements sent meanwhile, each cut to its first words. */
async function statementsOf(fn: () => Promise<unknown>): Promise<string[]> {
  sent.length = 0;
  await fn();
  return sent.map((text) => text.split(/[\s(]/, 3).slice(0, 2).join(' '));
}

describe('2PC round trips on PostgreSQL: BEGIN goes with the first statement', () => {
  const names = namespace('trips');
  let users: pg.Pool;
  let perms: pg.Pool;
  let coordinator: TwoPhaseCoordinator;
  const insert = (id: number) => [`INSERT INTO ${names.table} (id) VALUES ($1)`, [id]] as const;
  const visible = async (p: pg.Pool, id: number) =>
    (await p.query(`SELECT 1 FROM ${names.table} WHERE id = $1`, [id])).rowCount === 1;

  beforeAll(async () => {
    const env = testEnv();
    users = new pg.Pool({ connectionString: env.primaryUrl, max: 4, Client: RecordingClient });
    perms = new pg.Pool({ connectionString: env.primary2Url, max: 4, Client: RecordingClient });
    for (const p of [users, perms]) {
      p.on('error', () => {});
      await p.query(`CREATE TABLE ${names.table} (id int PRIMARY KEY)`);
    }
    coordinator = new TwoPhaseCoordinator({
      coordinatorId: names.coordinatorId,
      log: new PgDecisionLog({ pool: users, table: names.logTable }),
      participants: {
        users: new PgParticipant({ pool: users }),
        perms: new PgParticipant({ pool: perms }),
      },
    });
    // First use: the server checks and the log table's creation are not per transaction.
    await coordinator.transaction(async (tx) => {
      await tx.participant('users').query(...insert(0));
      await tx.participant('perms').query(...insert(0));
    });
  });

  afterAll(async () => {
    await coordinator.close();
    for (const p of [users, perms]) {
      await p.query(`DROP TABLE IF EXISTS ${names.table}`);
    }
    await users.query(`DROP TABLE IF EXISTS ${names.logTable}`);
    await Promise.all([users.end(), perms.end()]);
  });

  it('two participants, decision committed with one: five round trips, no separate BEGIN', async () => {
    const statements = await statementsOf(() =>
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(1));
        await tx.participant('perms').query(...insert(1));
      }),
    );
    // Each first statement carries its BEGIN (one Sync); perms is prepared; users commits
    // with the decision row; perms is committed.
    expect(statements).toEqual([
      'INSERT INTO',
      'INSERT INTO',
      'SELECT pg_current_xact_id',
      'INSERT INTO',
      'COMMIT PREPARED',
    ]);
    expect([await visible(users, 1), await visible(perms, 1)]).toEqual([true, true]);
  });

  it('one participant: two round trips (BEGIN with the statement, then COMMIT)', async () => {
    const statements = await statementsOf(() =>
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query(...insert(2));
      }),
    );
    expect(statements).toEqual(['INSERT INTO', 'COMMIT']);
    expect(await visible(users, 2)).toBe(true);
  });

  it('the first statement runs inside the transaction, with parameters or without', async () => {
    const participant = new PgParticipant({ pool: users });
    for (const [text, values] of [
      insert(3),
      [`INSERT INTO ${names.table} (id) VALUES (4)`, undefined],
    ] as const) {
      const branch = await participant.begin();
      await branch.query(text, values);
      // Not committed on its own: another session does not see it, and rollback removes it.
      expect(await visible(users, values === undefined ? 4 : 3)).toBe(false);
      await branch.rollback();
    }
    expect([await visible(users, 3), await visible(users, 4)]).toEqual([false, false]);
  });

  it('a failing first statement leaves the transaction open and failed, as after a BEGIN', async () => {
    const participant = new PgParticipant({ pool: users });
    for (const values of [[5], undefined]) {
      const branch = await participant.begin();
      const text = `SELECT no_such_column FROM ${names.table} WHERE id = ${values ? '$1' : '5'}`;
      const error = (await branch.query(text, values).catch((e: unknown) => e)) as {
        code?: string;
        position?: string;
      };
      expect(error.code).toBe('42703');
      // The position points into the caller's text, not into what was sent with BEGIN.
      expect(Number(error.position)).toBe(text.indexOf('no_such_column') + 1);
      const next = (await branch.query(...insert(5)).catch((e: unknown) => e)) as {
        code?: string;
      };
      expect(next.code).toBe('25P02');
      await branch.rollback();
    }
    expect(await visible(users, 5)).toBe(false);
  });

  it('a client that is not a pg.Client (a wrapper) gets its BEGIN on its own, first', async () => {
    const wrapped = {
      query: (text: string, values?: unknown[]) => users.query(text, values),
      connect: async () => {
        const client = await users.connect();
        return {
          query: (text: string, values?: unknown[]) => client.query(text, values),
          release: (error?: Error | boolean) => client.release(error),
        };
      },
    };
    const branch = await new PgParticipant({ pool: wrapped }).begin();
    const statements = await statementsOf(() => branch.query(...insert(7)));
    expect(statements).toEqual(['BEGIN', 'INSERT INTO']);
    expect(await visible(users, 7)).toBe(false);
    await branch.rollback();
    expect(await visible(users, 7)).toBe(false);
  });

  it('a branch that ran no statement commits, prepares or rolls back all the same', async () => {
    const participant = new PgParticipant({ pool: users });
    const idle = await participant.begin();
    expect(await idle.isReadOnly?.()).toBe(true);
    await idle.commit?.();
    const gid = `cw:${names.coordinatorId}:${'e'.repeat(32)}:users`;
    const empty = await participant.begin();
    await empty.prepare(gid);
    expect(await participant.rollbackPrepared(gid)).toBe(true);
    const unused = await participant.begin();
    await unused.rollback();
    // Every connection went back clean: a new branch works.
    const branch = await participant.begin();
    await branch.query(...insert(6));
    await branch.commit?.();
    expect(await visible(users, 6)).toBe(true);
  });
});

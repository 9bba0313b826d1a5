import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import {
  TwoPhaseCoordinator,
  type TwoPhaseCoordinatorOptions,
} from '../../../src/txn/coordinator.js';
import { coordinatorPrefix } from '../../../src/txn/gid.js';

/** A per-file namespace: tables, coordinator id and gid prefix nobody else uses. */
export function namespace(area: string) {
  const suffix = randomBytes(4).toString('hex');
  return {
    table: `txn_${area}_${suffix}`,
    logTable: `txn_${area}_log_${suffix}`,
    coordinatorId: `t${area}-${suffix}`,
  };
}

export function pool(url: string, max = 10): pg.Pool {
  const created = new pg.Pool({ connectionString: url, max });
  created.on('error', () => {});
  return created;
}

export interface Pair {
  users: pg.Pool;
  perms: pg.Pool;
  table: string;
  logTable: string;
  coordinatorId: string;
  coordinator(options?: Partial<TwoPhaseCoordinatorOptions>): TwoPhaseCoordinator;
  /** Ids present in each database. */
  rows(): Promise<{ users: number[]; perms: number[] }>;
  /** Prepared gids of this namespace left on either server. */
  prepared(): Promise<string[]>;
  decisions(): Promise<{ gid: string; decision: string }[]>;
  drop(): Promise<void>;
}

/** Two databases with the same table, a decision log on the first, and coordinators over them. */
export async function pair(
  usersUrl: string,
  permsUrl: string,
  names: ReturnType<typeof namespace>,
  tableSql = 'id int PRIMARY KEY',
): Promise<Pair> {
  const users = pool(usersUrl);
  const perms = pool(permsUrl);
  for (const p of [users, perms]) await p.query(`CREATE TABLE ${names.table} (${tableSql})`);
  const ids = async (p: pg.Pool) =>
    (await p.query(`SELECT id FROM ${names.table} ORDER BY id`)).rows.map((r) => Number(r.id));
  const preparedOn = async (p: pg.Pool) =>
    (
      await p.query('SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, $1)', [
        coordinatorPrefix(names.coordinatorId),
      ])
    ).rows.map((r) => String(r.gid));
  return {
    users,
    perms,
    ...names,
    coordinator: (options = {}) =>
      new TwoPhaseCoordinator({
        coordinatorId: names.coordinatorId,
        log: new PgDecisionLog({ pool: users, table: names.logTable }),
        participants: {
          users: new PgParticipant({ pool: users }),
          perms: new PgParticipant({ pool: perms }),
        },
        ...options,
      }),
    rows: async () => ({ users: await ids(users), perms: await ids(perms) }),
    prepared: async () => [...(await preparedOn(users)), ...(await preparedOn(perms))],
    decisions: async () => {
      const exists = await users.query('SELECT to_regclass($1) IS NOT NULL AS ok', [
        names.logTable,
      ]);
      if (!exists.rows[0].ok) return [];
      return (await users.query(`SELECT gid, decision FROM ${names.logTable}`)).rows;
    },
    drop: async () => {
      // Never leave a prepared transaction behind, even when a test failed half-way.
      for (const p of [users, perms]) {
        for (const gid of await preparedOn(p)) await p.query(`ROLLBACK PREPARED '${gid}'`);
        await p.query(`DROP TABLE IF EXISTS ${names.table}`);
      }
      await users.query(`DROP TABLE IF EXISTS ${names.logTable}`);
      await users.end();
      await perms.end();
    },
  };
}

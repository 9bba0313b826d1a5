// ORM matrix and bench: Kysely over the routed pool, through the README's recipe.

import { sql } from 'kysely';
import type pg from 'pg';
import { kyselyOverCauseway } from '../../../../examples/orm/kysely.js';
import {
  type OrmUnderTest,
  RollbackRequested,
  TX_PROBE_SQL,
  type TxProbe,
  tableFor,
} from '../scenario.js';

const table = tableFor('kysely');

export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  interface Database {
    [table: string]: { id: number; v: string };
  }
  const db = kyselyOverCauseway<Database>(pool);
  const probe = sql.raw<TxProbe>(TX_PROBE_SQL);
  return {
    async insert(id, v) {
      await db.insertInto(table).values({ id, v }).execute();
    },
    async read(id) {
      return (await db.selectFrom(table).select('v').where('id', '=', id).executeTakeFirst())?.v;
    },
    transaction(id, v, during, rollback) {
      return db.transaction().execute(async (trx) => {
        await trx.insertInto(table).values({ id, v }).execute();
        const first = (await probe.execute(trx)).rows[0]!;
        await during();
        const second = (await probe.execute(trx)).rows[0]!;
        if (rollback) throw new RollbackRequested();
        return [first, second];
      });
    },
    async stream(fromId, toId) {
      const ids: number[] = [];
      const rows = db
        .selectFrom(table)
        .select('id')
        .where('id', '>=', fromId)
        .where('id', '<=', toId)
        .orderBy('id')
        .stream();
      for await (const row of rows) ids.push(row.id);
      return ids;
    },
    async close() {
      await db.destroy(); // Kysely ends the pool it was given
    },
  };
}

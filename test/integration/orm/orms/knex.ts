// ORM matrix and bench: Knex 3.3+ over the routed pool (`connectionPool`), through the README's recipe.
import type pg from 'pg';
import { knexOverCauseway } from '../../../../examples/orm/knex.js';
import {
  type OrmUnderTest,
  RollbackRequested,
  TX_PROBE_SQL,
  type TxProbe,
  tableFor,
} from '../scenario.js';

const table = tableFor('knex');

export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  const db = knexOverCauseway(pool);
  return {
    async insert(id, v) {
      await db(table).insert({ id, v });
    },
    async read(id) {
      return (await db(table).where({ id }).first('v'))?.v;
    },
    transaction(id, v, during, rollback) {
      return db.transaction(async (trx) => {
        await trx(table).insert({ id, v });
        const first = (await trx.raw<{ rows: TxProbe[] }>(TX_PROBE_SQL)).rows[0]!;
        await during();
        const second = (await trx.raw<{ rows: TxProbe[] }>(TX_PROBE_SQL)).rows[0]!;
        if (rollback) throw new RollbackRequested();
        return [first, second];
      });
    },
    stream(fromId, toId) {
      // Knex 3.3.0 releases a `connectionPool` client twice after `.stream()` outside a transaction
      // (with a plain pg.Pool too, which then throws): stream inside one.
      return db.transaction(async (trx) => {
        const ids: number[] = [];
        const rows = trx(table)
          .select('id')
          .whereBetween('id', [fromId, toId])
          .orderBy('id')
          .stream();
        for await (const row of rows) ids.push((row as { id: number }).id);
        return ids;
      });
    },
    async close() {
      await db.destroy(); // Knex does not end a pool it was given
      await pool.end();
    },
  };
}

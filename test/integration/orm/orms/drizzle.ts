// ORM matrix and bench: Drizzle (node-postgres driver) over the routed pool, through the README's recipe.

import { eq, sql } from 'drizzle-orm';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import { drizzleOverCauseway } from '../../../../examples/orm/drizzle.js';
import {
  type OrmUnderTest,
  RollbackRequested,
  TX_PROBE_SQL,
  type TxProbe,
  tableFor,
} from '../scenario.js';

const table = tableFor('drizzle');
const items = pgTable(table, { id: integer().primaryKey(), v: text().notNull() });

// The node-postgres driver of Drizzle has no streaming or cursor API.
export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  const db = drizzleOverCauseway(pool);
  return {
    async insert(id, v) {
      await db.insert(items).values({ id, v });
    },
    async read(id) {
      return (await db.select({ v: items.v }).from(items).where(eq(items.id, id)))[0]?.v;
    },
    transaction(id, v, during, rollback) {
      return db.transaction(async (tx) => {
        await tx.insert(items).values({ id, v });
        const first = (await tx.execute<TxProbe>(sql.raw(TX_PROBE_SQL))).rows[0]!;
        await during();
        const second = (await tx.execute<TxProbe>(sql.raw(TX_PROBE_SQL))).rows[0]!;
        if (rollback) throw new RollbackRequested();
        return [first, second];
      });
    },
    close: () => pool.end(),
  };
}

// ORM matrix and bench: MikroORM 6 over the routed pool, through the README's recipe (Knex 3.1 inside:
// this is also the check of the recipe for Knex before 3.3).

import { EntitySchema } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { mikroOrmOverCauseway } from '../../../../examples/orm/mikro-orm.js';
import {
  type OrmUnderTest,
  RollbackRequested,
  TX_PROBE_SQL,
  type TxProbe,
  tableFor,
} from '../scenario.js';

const table = tableFor('mikro-orm');
interface Item {
  id: number;
  v: string;
}
const Item = new EntitySchema<Item>({
  name: 'Item',
  tableName: table,
  properties: {
    id: { type: 'number', primary: true, autoincrement: false },
    v: { type: 'string' },
  },
});

export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  const orm = await mikroOrmOverCauseway(pool, [Item]);
  return {
    async insert(id, v) {
      const em = orm.em.fork();
      em.create(Item, { id, v });
      await em.flush();
    },
    async read(id) {
      // A fork per read: MikroORM's identity map would otherwise answer without a query.
      return (await orm.em.fork().findOne(Item, { id }))?.v;
    },
    transaction(id, v, during, rollback) {
      return orm.em.fork().transactional(async (em) => {
        em.create(Item, { id, v });
        await em.flush();
        const [first] = await em.execute<TxProbe[]>(TX_PROBE_SQL);
        await during();
        const [second] = await em.execute<TxProbe[]>(TX_PROBE_SQL);
        if (rollback) throw new RollbackRequested();
        return [first!, second!];
      });
    },
    async stream(fromId, toId) {
      // MikroORM 6 has no stream API of its own; its Knex query builder streams.
      const ids: number[] = [];
      const knex = orm.em.fork().getKnex();
      const rows = knex(table)
        .select('id')
        .whereBetween('id', [fromId, toId])
        .orderBy('id')
        .stream();
      for await (const row of rows) ids.push((row as { id: number }).id);
      return ids;
    },
    async close() {
      await orm.close();
      await pool.end();
    },
  };
}

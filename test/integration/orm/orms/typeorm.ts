// ORM matrix and bench: TypeORM over the routed pool, through the README's recipe.
import type pg from 'pg';
import { EntitySchema } from 'typeorm';
import { typeormOverCauseway } from '../../../../examples/orm/typeorm.js';
import {
  type OrmUnderTest,
  RollbackRequested,
  TX_PROBE_SQL,
  type TxProbe,
  tableFor,
} from '../scenario.js';

const table = tableFor('typeorm');
interface Item {
  id: number;
  v: string;
}
const Item = new EntitySchema<Item>({
  name: 'Item',
  tableName: table,
  columns: { id: { type: Number, primary: true }, v: { type: String } },
});

export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  const dataSource = await typeormOverCauseway(pool, [Item]).initialize();
  const items = dataSource.getRepository(Item);
  return {
    async insert(id, v) {
      await items.insert({ id, v });
    },
    async read(id) {
      return (await items.findOneBy({ id }))?.v;
    },
    transaction(id, v, during, rollback) {
      return dataSource.transaction(async (manager) => {
        await manager.insert(Item, { id, v });
        const [first] = await manager.query<TxProbe[]>(TX_PROBE_SQL);
        await during();
        const [second] = await manager.query<TxProbe[]>(TX_PROBE_SQL);
        if (rollback) throw new RollbackRequested();
        return [first!, second!];
      });
    },
    async stream(fromId, toId) {
      const ids: number[] = [];
      const rows = await items
        .createQueryBuilder('item')
        .select('item.id', 'id')
        .where('item.id BETWEEN :fromId AND :toId', { fromId, toId })
        .orderBy('item.id')
        .stream();
      for await (const row of rows) ids.push((row as { id: number }).id);
      return ids;
    },
    close: () => dataSource.destroy(), // ends the pool
  };
}

// ORM matrix and bench: Sequelize 6 over the routed pool, through the README's recipe.
import type pg from 'pg';
import { DataTypes, QueryTypes } from 'sequelize';
import { sequelizeOverCauseway } from '../../../../examples/orm/sequelize.js';
import {
  type OrmUnderTest,
  RollbackRequested,
  TX_PROBE_SQL,
  type TxProbe,
  tableFor,
} from '../scenario.js';

const table = tableFor('sequelize');

// Sequelize has no streaming or cursor API.
export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  const sequelize = sequelizeOverCauseway(pool, { logging: false });
  const Item = sequelize.define(
    'Item',
    {
      id: { type: DataTypes.INTEGER, primaryKey: true },
      v: { type: DataTypes.STRING, allowNull: false },
    },
    { tableName: table, timestamps: false },
  );
  return {
    async insert(id, v) {
      await Item.create({ id, v });
    },
    async read(id) {
      return (await Item.findByPk(id))?.get('v') as string | undefined;
    },
    transaction(id, v, during, rollback) {
      return sequelize.transaction(async (transaction) => {
        await Item.create({ id, v }, { transaction });
        const probe = () =>
          sequelize.query<TxProbe>(TX_PROBE_SQL, { type: QueryTypes.SELECT, transaction });
        const [first] = await probe();
        await during();
        const [second] = await probe();
        if (rollback) throw new RollbackRequested();
        return [first!, second!];
      });
    },
    async close() {
      await sequelize.close(); // Sequelize does not end the pool
      await pool.end();
    },
  };
}

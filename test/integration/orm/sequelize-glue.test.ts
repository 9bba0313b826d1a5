// The Sequelize recipe's connections are views of the routed pool (`pooledClientModule`): a session-level SET outside a
// transaction would reach one pooled connection only, so it is refused; SET LOCAL in a
// transaction runs on the transaction's one client.
import { QueryTypes } from 'sequelize';
import { afterAll, describe, expect, it } from 'vitest';
import { ormPool } from '../../../examples/orm/pool.js';
import { sequelizeOverCauseway } from '../../../examples/orm/sequelize.js';
import { testEnv } from '../../harness/env.js';

const env = testEnv();
const pool = ormPool({ primary: env.primaryUrl, replicas: [env.replicaUrl] });
const sequelize = sequelizeOverCauseway(pool, { logging: false });

afterAll(async () => {
  await sequelize.close();
  await pool.end();
});

describe('Sequelize over the routed pool', () => {
  it('refuses a session-level SET outside a transaction', async () => {
    await expect(sequelize.query('SET search_path TO elsewhere')).rejects.toThrow(
      /session-level SET would reach one pooled connection only/,
    );
    const [row] = await sequelize.query<{ search_path: string }>('SHOW search_path', {
      type: QueryTypes.SELECT,
    });
    expect(row!.search_path).not.toContain('elsewhere');
  });

  it('runs SET LOCAL and the statements after it on the transaction client', async () => {
    const seen = await sequelize.transaction(async (transaction) => {
      await sequelize.query("SET LOCAL application_name = 'sequelize-glue'", { transaction });
      const [row] = await sequelize.query<{ name: string }>(
        "SELECT current_setting('application_name') AS name",
        { type: QueryTypes.SELECT, transaction },
      );
      return row!.name;
    });
    expect(seen).toBe('sequelize-glue');
  });
});

// ORM matrix and bench: raw node-postgres over the routed pool.
import type pg from 'pg';
import QueryStream from 'pg-query-stream';
import { type OrmUnderTest, RollbackRequested, TX_PROBE_SQL, tableFor } from '../scenario.js';

const table = tableFor('pg');

export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  return {
    async insert(id, v) {
      await pool.query(`INSERT INTO ${table} (id, v) VALUES ($1, $2)`, [id, v]);
    },
    async read(id) {
      return (await pool.query(`SELECT v FROM ${table} WHERE id = $1`, [id])).rows[0]?.v;
    },
    async transaction(id, v, during, rollback) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${table} (id, v) VALUES ($1, $2)`, [id, v]);
        const first = (await client.query(TX_PROBE_SQL)).rows[0];
        await during();
        const second = (await client.query(TX_PROBE_SQL)).rows[0];
        if (rollback) throw new RollbackRequested();
        await client.query('COMMIT');
        return [first, second];
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      } finally {
        client.release();
      }
    },
    async stream(fromId, toId) {
      const client = await pool.connect();
      try {
        const rows = client.query(
          new QueryStream(`SELECT id FROM ${table} WHERE id BETWEEN $1 AND $2 ORDER BY id`, [
            fromId,
            toId,
          ]),
        );
        const ids: number[] = [];
        for await (const row of rows) ids.push((row as { id: number }).id);
        return ids;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedis } from '../../harness/cluster.js';
import { testEnv } from '../../harness/env.js';

const env = testEnv();
const clients: pg.Client[] = [];

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  clients.push(client);
  return client;
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
});

describe('test cluster', () => {
  it('replicates from the primary to both replicas, the lagging one late', async () => {
    const primary = await connect(env.primaryUrl);
    const replica = await connect(env.replicaUrl);
    const lagging = await connect(env.laggingReplicaUrl);
    const table = `harness_${Math.random().toString(36).slice(2, 10)}`;
    await primary.query(`CREATE TABLE ${table} (v int)`);
    await primary.query(`INSERT INTO ${table} VALUES (1)`);
    // The lagging replica cannot have applied the CREATE yet: it is held back by its delay.
    const early = await lagging.query(`SELECT to_regclass('${table}') AS t`);
    expect(early.rows[0].t).toBeNull();
    await expect
      .poll(async () => (await replica.query(`SELECT to_regclass('${table}') AS t`)).rows[0].t, {
        timeout: 5000,
      })
      .not.toBeNull();
    await expect
      .poll(async () => (await lagging.query(`SELECT to_regclass('${table}') AS t`)).rows[0].t, {
        timeout: env.replicaDelayMs * 4,
        interval: 100,
      })
      .not.toBeNull();
    await primary.query(`DROP TABLE ${table}`);
  });

  it('gives two independent primaries that accept prepared transactions', async () => {
    const a = await connect(env.primaryUrl);
    const b = await connect(env.primary2Url);
    const idA = await a.query('SELECT system_identifier::text AS id FROM pg_control_system()');
    const idB = await b.query('SELECT system_identifier::text AS id FROM pg_control_system()');
    expect(idA.rows[0].id).not.toBe(idB.rows[0].id);
    for (const c of [a, b]) {
      const { rows } = await c.query('SHOW max_prepared_transactions');
      expect(Number(rows[0].max_prepared_transactions)).toBeGreaterThan(0);
    }
  });

  it('starts a private Redis that loses its data on restart unless append-only', async () => {
    const { Redis } = await import('ioredis');
    for (const appendOnly of [false, true]) {
      const server = await startRedis({ appendOnly });
      const redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        await redis.set('k', 'v');
        await server.stop();
        await server.start();
        await expect
          .poll(async () => redis.get('k').catch(() => 'down'), { timeout: 5000 })
          .not.toBe('down');
        expect(await redis.get('k')).toBe(appendOnly ? 'v' : null);
      } finally {
        redis.disconnect();
        await server.stop();
      }
    }
  });
});

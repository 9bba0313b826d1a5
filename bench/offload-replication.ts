/**
 * Replication control for the read-offload workload: the register table, node names by port,
 * waiting for the replicas, and setting and measuring each replica's apply delay.
 */
import pg from 'pg';
import { sleep } from '../src/util/timers.js';
import type { OffloadNodes } from './offload-strategies.js';

/** Creates the register table: one row per key, `version` 0 at first. */
export async function createRegisterTable(primary: pg.Pool, table: string): Promise<void> {
  await primary.query(`CREATE TABLE ${table} (key text PRIMARY KEY, version int NOT NULL)`);
}

/** Node names by server port, asked of each server (the port a statement reports). */
export async function nodeNamesByPort(nodes: OffloadNodes): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  const all = [{ name: 'primary', url: nodes.primaryUrl }, ...nodes.replicas];
  for (const node of all) {
    const client = new pg.Client({ connectionString: node.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ port: number }>('SELECT inet_server_port() AS port');
      names.set(rows[0]!.port, node.name);
    } finally {
      await client.end();
    }
  }
  return names;
}

/**
 * Waits until every replica has replayed everything the primary has written so far (its WAL
 * write location, which covers every commit that has returned).
 */
export async function waitForReplicas(nodes: OffloadNodes, timeoutMs = 30_000): Promise<void> {
  const primary = new pg.Client({ connectionString: nodes.primaryUrl });
  await primary.connect();
  let target: string;
  try {
    target = (await primary.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  } finally {
    await primary.end();
  }
  const deadline = performance.now() + timeoutMs;
  for (const replica of nodes.replicas) {
    const client = new pg.Client({ connectionString: replica.url });
    await client.connect();
    try {
      for (;;) {
        const { rows } = await client.query(
          'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done',
          [target],
        );
        if (rows[0].done === true) break;
        if (performance.now() > deadline) {
          throw new Error(`${replica.name} did not replay up to ${target} in ${timeoutMs} ms`);
        }
        await sleep(10);
      }
    } finally {
      await client.end();
    }
  }
}

/**
 * Sets `recovery_min_apply_delay` on a replica (ALTER SYSTEM works on a hot standby: it writes
 * postgresql.auto.conf) and reloads, then waits until a new connection shows the setting.
 */
export async function setApplyDelay(replicaUrl: string, delayMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: replicaUrl });
  await client.connect();
  try {
    await client.query(`ALTER SYSTEM SET recovery_min_apply_delay = '${Math.round(delayMs)}ms'`);
    await client.query('SELECT pg_reload_conf()');
  } finally {
    await client.end();
  }
  const deadline = performance.now() + 10_000;
  for (;;) {
    const check = new pg.Client({ connectionString: replicaUrl });
    await check.connect();
    try {
      const { rows } = await check.query(
        `SELECT setting::int AS ms FROM pg_settings WHERE name = 'recovery_min_apply_delay'`,
      );
      if (rows[0].ms === Math.round(delayMs)) return;
    } finally {
      await check.end();
    }
    if (performance.now() > deadline) throw new Error(`${replicaUrl}: delay not applied`);
    await sleep(20);
  }
}

/**
 * Measures each replica's apply delay: commits a new version of a probe key on the primary and
 * times (from the commit's return) until each replica shows it, polling every 2 ms on
 * connections opened beforehand. Waits first until the replicas have replayed everything.
 */
export async function measureApplyDelays(
  nodes: OffloadNodes,
  table: string,
): Promise<Record<string, number>> {
  const key = 'lag-probe';
  const primary = new pg.Client({ connectionString: nodes.primaryUrl });
  const replicas = nodes.replicas.map(
    (replica) => [replica.name, new pg.Client({ connectionString: replica.url })] as const,
  );
  try {
    await Promise.all([primary, ...replicas.map(([, client]) => client)].map((c) => c.connect()));
    await primary.query(
      `INSERT INTO ${table} (key, version) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING`,
      [key],
    );
    await waitForReplicas(nodes);
    const { rows } = await primary.query(
      `UPDATE ${table} SET version = version + 1 WHERE key = $1 RETURNING version`,
      [key],
    );
    const committedAt = performance.now();
    const delays = await Promise.all(
      replicas.map(async ([name, client]) => {
        for (;;) {
          const seen = await client.query(`SELECT version FROM ${table} WHERE key = $1`, [key]);
          const waited = performance.now() - committedAt;
          if (seen.rows[0].version >= rows[0].version) return [name, waited] as const;
          if (waited > 30_000) throw new Error(`${name} did not apply the probe in 30 s`);
          await sleep(2);
        }
      }),
    );
    return Object.fromEntries(delays);
  } finally {
    await Promise.allSettled(
      [primary, ...replicas.map(([, client]) => client)].map((c) => c.end()),
    );
  }
}

/** The rows of a statement: what both `pg.Pool` and the routed pool resolve to. */

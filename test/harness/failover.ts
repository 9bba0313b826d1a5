/**
 * Moving the primary between servers the harness started: promote a standby, demote the old
 * primary to a standby of the new one, or both in order (a switchover that loses nothing).
 */
import { chownSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { pgOwner } from './binaries.js';
import type { PgServer } from './types.js';

async function query<R>(url: string, sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query(sql)).rows as R[];
  } finally {
    await client.end().catch(() => {});
  }
}

/** Ends recovery on a running standby (`pg_promote()`, waiting up to 60 s): a new timeline. */
export async function promote(server: PgServer): Promise<void> {
  const [row] = await query<{ promoted: boolean }>(
    server.url,
    'SELECT pg_promote(true, 60) AS promoted',
  );
  if (row?.promoted !== true) throw new Error(`${server.name} did not promote`);
}

/**
 * Makes `server` a streaming standby of `primary`: stopped (fast) if running, `standby.signal`
 * written, `primary_conninfo` pointed at `primary`, started, and waits until it streams. Its
 * WAL must end where `primary`'s history forked from it (a clean shutdown before `primary` was
 * promoted, as `switchover` does); a server that wrote past the fork needs `pg_rewind` instead.
 */
export async function demote(server: PgServer, primary: PgServer): Promise<void> {
  await server.stop().catch(() => {});
  const signal = join(server.dataDir, 'standby.signal');
  await writeFile(signal, '');
  const owner = pgOwner();
  if (owner) chownSync(signal, owner.uid, owner.gid);
  // postgresql.auto.conf: the last setting wins, so earlier primary_conninfo lines are overridden.
  await appendFile(
    join(server.dataDir, 'postgresql.auto.conf'),
    `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=${server.name}'\nrecovery_target_timeline = 'latest'\n`,
  );
  await server.start();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [row] = await query<{ streaming: boolean }>(
      server.url,
      `SELECT coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) AS streaming`,
    );
    if (row?.streaming) return;
    if (Date.now() > deadline)
      throw new Error(`${server.name} does not stream from ${primary.name}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A switchover from `from` (the primary) to `to` (its standby): `from` stopped fast (its WAL
 * senders ship everything, the shutdown checkpoint included, before it exits: no acknowledged
 * write is lost), `to` promoted, then `from` demoted to a standby of `to`. `onPromoted` runs
 * right after the promotion (a benchmark's clock). Resolves once `from` streams from `to`.
 */
export async function switchover(
  from: PgServer,
  to: PgServer,
  onPromoted?: () => void,
): Promise<void> {
  await from.stop();
  await promote(to);
  onPromoted?.();
  await demote(from, to);
}

/** Whether the server at `url` is a standby (`pg_is_in_recovery()`). */
export async function inRecovery(url: string): Promise<boolean> {
  const [row] = await query<{ recovering: boolean }>(
    url,
    'SELECT pg_is_in_recovery() AS recovering',
  );
  return row?.recovering === true;
}

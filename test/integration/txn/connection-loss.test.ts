import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgFenceGuard } from '../../../adapters/pg/fencing.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { PgVersionedStore } from '../../../adapters/pg/versioned-store.js';
import { type PgServer, startPostgresPrimary } from '../../harness/cluster.js';
import { pool } from './helpers.js';

// `pg` emits 'error' on a checked-out client when its server goes away, and `pg.Pool` listens
// only on idle ones: unheard, that event ends the process (vitest reports it as an unhandled
// error). A coordinator or a fenced writer must instead see a failed statement and go on.
describe('a transaction whose PostgreSQL goes away mid-way', () => {
  let server: PgServer;
  const uncaught: unknown[] = [];
  const record = (error: unknown) => uncaught.push(error);

  beforeAll(async () => {
    process.on('uncaughtException', record);
    server = await startPostgresPrimary({ name: 'conn-loss' });
  });

  afterAll(async () => {
    process.off('uncaughtException', record);
    await server?.stop();
  });

  afterEach(() => {
    expect(uncaught.map(String)).toEqual([]);
  });

  it('PgParticipant: an open branch fails its next statement; the process and the pool go on', async () => {
    const p = pool(server.url, 2);
    try {
      const participant = new PgParticipant({ pool: p });
      const branch = await participant.begin();
      await branch.query('SELECT 1');
      await server.crash();
      await expect(branch.query('SELECT 1')).rejects.toThrow();
      await branch.rollback();
      await server.start();
      const next = await participant.begin();
      expect((await next.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await next.rollback();
    } finally {
      await p.end();
    }
  });

  it('PgFenceGuard.write: the guarded write rejects; the process and the pool go on', async () => {
    const p = pool(server.url, 2);
    try {
      const guard = new PgFenceGuard({ pool: p });
      await guard.check('conn-loss', 1n);
      const write = guard.write('conn-loss', 2n, async (client) => {
        await client.query('SELECT 1');
        await server.crash();
        await client.query('SELECT 1');
      });
      await expect(write).rejects.toThrow();
      await server.start();
      await guard.write('conn-loss', 3n, async (client) => {
        await client.query('SELECT 1');
      });
      await expect(guard.check('conn-loss', 2n)).rejects.toMatchObject({
        code: 'STALE_FENCING_TOKEN',
      });
    } finally {
      await p.end();
    }
  });

  it('PgVersionedStore.put: a write blocked on the row lock rejects; the process and the store go on', async () => {
    const p = pool(server.url, 3);
    try {
      const store = new PgVersionedStore<string>({ pool: p, handler: 'lww' });
      const first = await store.put('conn-loss', 'one', { actor: 'a' });
      const blocker = await p.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM causeway_versioned_values WHERE key = $1 FOR UPDATE', [
        'conn-loss',
      ]);
      blocker.on('error', () => {}); // the test's own client: its loss is expected
      // Settled into a value at once: it rejects while the crash is still being awaited.
      const blocked = store.put('conn-loss', 'two', { context: first.context, actor: 'a' }).then(
        () => 'written',
        (error: unknown) => error,
      );
      // Crash only once the store's transaction is waiting for the row lock, inside #updateOnce.
      await waitFor(async () => {
        const { rows } = await p.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        );
        return rows[0].n > 0;
      });
      await server.crash();
      expect(await blocked).toBeInstanceOf(Error);
      blocker.release(new Error('server crashed'));
      await server.start();
      const after = await store.put('conn-loss', 'three', { actor: 'a' });
      expect(after.values).toEqual(['three']);
    } finally {
      await p.end();
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

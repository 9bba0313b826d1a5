import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgFenceGuard } from '../../../adapters/pg/fencing.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
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
});

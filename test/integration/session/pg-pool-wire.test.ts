import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionContext, withSession } from '../../../src/session/context.js';
import { testEnv } from '../../harness/env.js';
import { startRelay } from '../../support/tcp-relay.js';
import { classifierReady, endRoutedPools, routedPool } from './routed-pool-support.js';

const env = testEnv();
const MARKER = 'stray_after_ready';
/** ReadyForQuery ('Z', length 5, status) and a ParseComplete ('1', length 4) nobody asked for. */
const READY = Buffer.from([0x5a, 0, 0, 0, 5]);
const STRAY = Buffer.from([0x31, 0, 0, 0, 4]);
let relay: Awaited<ReturnType<typeof startStrayRelay>>;

/**
 * A TCP relay to the real primary that, on a connection that sent a statement naming `MARKER`,
 * appends a stray ParseComplete to the ReadyForQuery that ends it, in the same packet (as some
 * proxies do). `pg` calls back at ReadyForQuery, then fails the connection on the stray message.
 */
function startStrayRelay(port: number) {
  return startRelay(port, () => {
    let armed = false;
    return {
      fromClient(chunk, upstream) {
        if (chunk.includes(MARKER)) armed = true;
        upstream.write(chunk);
      },
      fromServer(chunk, client) {
        const at = armed ? chunk.indexOf(READY) : -1;
        if (at < 0) return void client.write(chunk);
        armed = false;
        const end = at + READY.length + 1;
        client.write(Buffer.concat([chunk.subarray(0, end), STRAY, chunk.subarray(end)]));
      },
    };
  });
}

/** The pool's 'error' events, and a promise of the next one. */
function poolErrors(pool: pg.Pool) {
  const seen: Error[] = [];
  let heard!: (error: Error) => void;
  const next = new Promise<Error>((resolve) => {
    heard = resolve;
  });
  pool.on('error', (error) => {
    seen.push(error);
    heard(error);
  });
  return { seen, next };
}

beforeAll(async () => {
  await classifierReady();
  relay = await startStrayRelay(Number(new URL(env.primaryUrl).port));
});

afterAll(async () => {
  await endRoutedPools();
  await relay.close();
});

describe('a stray message after ReadyForQuery on the primary', () => {
  it('pg.Pool resolves the statement, then drops the connection with an error event', async () => {
    const pool = new pg.Pool({ connectionString: relay.url, max: 2 });
    const errors = poolErrors(pool);
    try {
      const result = await pool.query(`SELECT 1 AS ${MARKER}`);
      expect(result.rows).toEqual([{ [MARKER]: 1 }]);
      expect((await errors.next).message).toMatch(/unexpected parseComplete/);
      expect(pool.totalCount).toBe(0);
    } finally {
      await pool.end();
    }
  });

  for (const [kind, sql] of [
    ['read', `SELECT 1 AS ${MARKER}`],
    ['write', `CREATE TEMP TABLE ${MARKER} (id int)`],
  ] as const) {
    it(`the routed pool in a session does the same for a ${kind}, with the floor raised`, async () => {
      // No replica: the read runs on the primary, through the relay, as the pool's statement.
      const { pool } = routedPool({}, {}, { connectionString: relay.url, max: 2 });
      const errors = poolErrors(pool);
      const session = new SessionContext({ id: `stray-${kind}` });
      const result = await withSession(session, () => pool.query(sql));
      expect(result.command).toBe(kind === 'read' ? 'SELECT' : 'CREATE');
      expect(kind === 'read' ? session.readFloor : session.writeFloor).toBeDefined();
      expect((await errors.next).message).toMatch(/unexpected parseComplete/);
      expect(errors.seen).toHaveLength(1);
      expect(pool.totalCount).toBe(0);
    });
  }
});

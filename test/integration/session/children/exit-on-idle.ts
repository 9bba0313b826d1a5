// Run by pg-pool-dropin.test.ts: a routed pool with allowExitOnIdle, used in a session (a write,
// a replica read) and never ended. The process must exit by itself once the pool is idle, as it
// would with pg.Pool; if it is still alive after 8 s, it says so and exits with code 3.
import { createReplicatedPool } from '../../../../adapters/pg/replicated-pool.js';
import { SessionContext, withSession } from '../../../../src/session/context.js';
import { testEnv } from '../../../harness/env.js';

const env = testEnv();
const pool = createReplicatedPool({
  primary: { config: { connectionString: env.primaryUrl, allowExitOnIdle: true } },
  replicas: [env.replicaUrl],
  replicaSetOptions: { checkTimeoutMs: 2000 },
});
await pool.replicaSet.refresh();
await withSession(new SessionContext({ id: 'exit-on-idle' }, 'eventual'), async () => {
  await pool.query('SELECT pg_current_wal_insert_lsn()');
  await pool.query('SELECT 1 AS one');
});
setTimeout(() => {
  console.log('still running');
  process.exit(3);
}, 8000).unref();

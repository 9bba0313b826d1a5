import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { DEMO_ENV } from '../../../examples/editorial/postgres-store.js';
import { testEnv } from '../../harness/env.js';
import { expectCausewayHeld, runDemo } from '../../unit/examples/report.js';

describe('the editorial demo on real PostgreSQL replication and Redis', () => {
  it('npm run demo -- --postgres --once: anomalies without Causeway, none with it', async () => {
    const env = testEnv();
    const run = await runDemo(['--postgres', '--once', '--port', '0'], {
      [DEMO_ENV.primaryUrl]: env.primaryUrl,
      // The replica that applies at once first, then the one that lags.
      [DEMO_ENV.replicaUrls]: `${env.replicaUrl},${env.laggingReplicaUrl}`,
      [DEMO_ENV.permissionsUrl]: env.primary2Url,
      [DEMO_ENV.redisUrl]: env.redisUrl,
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('PostgreSQL: a primary with 2 streaming replicas');
    expectCausewayHeld(run.stdout);

    // Atomic signups leave nothing prepared behind on either database.
    for (const url of [env.primaryUrl, env.primary2Url]) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query(
          "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'cw:editorial:%'",
        );
        expect(rows).toEqual([]);
      } finally {
        await client.end();
      }
    }
  }, 60_000);
});

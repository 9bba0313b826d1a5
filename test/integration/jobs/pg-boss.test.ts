// pg-boss on the harness primary (its own schema), through the shared job suite: the enqueuing
// session travels with the job, under its policy (test/support/job-suite.ts).
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { pgBossConsistency } from '../../../src/jobs/pg-boss.js';
import { testEnv } from '../../harness/env.js';
import { describeJobAdapter, type JobPayload } from '../../support/job-suite.js';

describeJobAdapter('pgBossConsistency', async (setup) => {
  const { primaryUrl } = testEnv();
  const schema = `boss_${setup.suffix}`;
  const name = 'reads';
  const boss = new PgBoss({ connectionString: primaryUrl, schema, max: 3 });
  boss.on('error', () => {});
  await boss.start();
  await boss.createQueue(name);
  const patient = pgBossConsistency(setup.patient);
  const impatient = pgBossConsistency(setup.impatient);
  const work = (job: { data: JobPayload }) => setup.work(job.data);
  const patientHandler = patient.handler<JobPayload, void>(boss, work);
  const impatientHandler = impatient.handler<JobPayload, void>(boss, work);
  await boss.work<JobPayload>(name, { pollingIntervalSeconds: 0.5 }, async (jobs) => {
    for (const job of jobs) await (job.data.impatient ? impatientHandler : patientHandler)([job]);
  });
  return {
    payload: (data, policy) => patient.data(data, policy),
    add: async (payload) => {
      await boss.send(name, payload);
    },
    close: async () => {
      await boss.stop({ graceful: false }).catch(() => {});
      const direct = new pg.Client({ connectionString: primaryUrl });
      await direct.connect();
      await direct.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await direct.end();
    },
  };
});

// graphile-worker on the harness primary (its own schema), through the shared job suite: the
// enqueuing session travels with the job, under its policy (test/support/job-suite.ts).
import { type JobHelpers, makeWorkerUtils, run } from 'graphile-worker';
import pg from 'pg';
import { graphileWorkerConsistency } from '../../../src/jobs/graphile-worker.js';
import { testEnv } from '../../harness/env.js';
import { describeJobAdapter, type JobPayload } from '../../support/job-suite.js';

describeJobAdapter('graphileWorkerConsistency', async (setup) => {
  const { primaryUrl } = testEnv();
  const schema = `gw_${setup.suffix}`;
  const patient = graphileWorkerConsistency(setup.patient);
  const impatient = graphileWorkerConsistency(setup.impatient);
  const patientTask = patient.task<JobPayload, JobHelpers>(setup.work);
  const impatientTask = impatient.task<JobPayload, JobHelpers>(setup.work);
  const runner = await run({
    connectionString: primaryUrl,
    schema,
    concurrency: 2,
    pollInterval: 200,
    noHandleSignals: true,
    logger: undefined,
    taskList: {
      read: (payload, helpers) =>
        (payload as JobPayload).impatient
          ? impatientTask(payload, helpers)
          : patientTask(payload, helpers),
    },
  });
  const utils = await makeWorkerUtils({ connectionString: primaryUrl, schema });
  return {
    payload: (data, policy) => patient.payload(data, policy),
    add: async (payload) => {
      await utils.addJob('read', payload);
    },
    close: async () => {
      await runner.stop();
      await utils.release();
      const direct = new pg.Client({ connectionString: primaryUrl });
      await direct.connect();
      await direct.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await direct.end();
    },
  };
});

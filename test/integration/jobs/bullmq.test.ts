// BullMQ on the harness's Redis, through the shared job suite: the enqueuing session travels with
// the job, under its policy (test/support/job-suite.ts).
import { type Job, Queue, QueueEvents, Worker } from 'bullmq';
import { bullmqConsistency } from '../../../src/jobs/bullmq.js';
import { testEnv } from '../../harness/env.js';
import { describeJobAdapter, type JobPayload } from '../../support/job-suite.js';

describeJobAdapter('bullmqConsistency', async (setup) => {
  const redisUrl = new URL(testEnv().redisUrl);
  const connection = {
    host: redisUrl.hostname,
    port: Number(redisUrl.port),
    maxRetriesPerRequest: null,
  };
  const name = `causeway-jobs-${setup.suffix}`;
  const patient = bullmqConsistency(setup.patient);
  const impatient = bullmqConsistency(setup.impatient);
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  const work = (job: { data: JobPayload }) => setup.work(job.data);
  const patientProcessor = patient.processor<JobPayload, void>(work);
  const impatientProcessor = impatient.processor<JobPayload, void>(work);
  const worker = new Worker<JobPayload, void>(
    name,
    (job: Job<JobPayload, void>, token?: string) =>
      job.data.impatient ? impatientProcessor(job, token) : patientProcessor(job, token),
    { connection, concurrency: 4 },
  );
  await worker.waitUntilReady();
  return {
    payload: (data, policy) => patient.data(data, policy),
    add: async (payload) => {
      await queue.add('read', payload);
    },
    close: async () => {
      await worker.close();
      await events.close();
      await queue.obliterate({ force: true }).catch(() => {});
      await queue.close();
    },
  };
});

// `causeway/bullmq`: BullMQ jobs that carry the enqueuing session into the worker, with a per-job
// policy ('always', 'sticky', 'delayed'). Structural types: Causeway never imports BullMQ.
import { withSession } from '../session/context.js';
import {
  type DataConsistency,
  JOB_DELAYS_FIELD,
  type JobConsistencyFields,
  type JobConsistencyOptions,
  jobFields,
  planJob,
  resolveJobOptions,
} from './policy.js';

export {
  type DataConsistency,
  JOB_DELAYS_FIELD,
  JOB_POLICY_FIELD,
  type JobConsistencyFields,
  type JobConsistencyOptions,
  type JobTokens,
} from './policy.js';

/** The part of a BullMQ `Job` the worker wrapper uses. */
export interface BullJobLike<Data> {
  readonly data: Data;
  updateData(data: Data): Promise<void>;
  moveToDelayed(timestamp: number, token?: string): Promise<void>;
}

export interface BullMQConsistency {
  /**
   * `data` plus the current session and the job's policy (default: the configured one), for
   * `queue.add(name, jobs.data({ orderId }, 'delayed'))` inside a request.
   */
  data<Data extends object>(data: Data, policy?: DataConsistency): Data & JobConsistencyFields;
  /**
   * A BullMQ processor running `processor` in the job's session under its policy: `new
   * Worker(queue, jobs.processor(async (job) => ...), options)`. A `'delayed'` job whose floor no
   * replica has applied is moved back to the delayed set (BullMQ's `DelayedError`), its delay
   * count kept in the payload; a job without a session runs in a fresh one, never fails.
   */
  processor<Data extends object, Result>(
    processor: (job: BullJobLike<Data>, token?: string) => Promise<Result>,
  ): (job: BullJobLike<Data>, token?: string) => Promise<Result>;
}

/** Session-carrying BullMQ jobs, configured once per app. */
export function bullmqConsistency(options: JobConsistencyOptions): BullMQConsistency {
  const resolved = resolveJobOptions('bullmqConsistency', options);
  return {
    data: (data, policy) => ({ ...data, ...jobFields(resolved, policy) }),
    processor: (processor) => async (job, token) => {
      const plan = planJob(resolved, job.data as JobConsistencyFields);
      if ('run' in plan) return withSession(plan.run, () => processor(job, token));
      await job.updateData({ ...job.data, [JOB_DELAYS_FIELD]: plan.delay });
      await job.moveToDelayed(Date.now() + resolved.delayMs, token);
      // BullMQ recognises its DelayedError by name: the job is not failed, only delayed.
      const delayed = new Error('causeway: no replica has applied the job session floor yet');
      delayed.name = 'DelayedError';
      throw delayed;
    },
  };
}

// `causeway/graphile-worker`: graphile-worker tasks that carry the enqueuing session, with the same
// per-job policy as `causeway/bullmq`. Structural types: Causeway never imports graphile-worker.
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

/** The part of graphile-worker's `JobHelpers` the task wrapper uses. */
export interface GraphileHelpersLike {
  readonly job: { readonly task_identifier: string };
  addJob(identifier: string, payload: unknown, spec?: { runAt?: Date }): Promise<unknown>;
}

export interface GraphileWorkerConsistency {
  /** `payload` plus the current session and the job's policy: `addJob('task', jobs.payload({ id }))`. */
  payload<Payload extends object>(
    payload: Payload,
    policy?: DataConsistency,
  ): Payload & JobConsistencyFields;
  /**
   * A task running `task` in the job's session under its policy. A `'delayed'` job whose floor
   * no replica has applied is added again with `runAt` (its delay count in the payload) and this
   * run completes; a payload without a session runs in a fresh one.
   */
  task<Payload, Helpers extends GraphileHelpersLike>(
    task: (payload: Payload, helpers: Helpers) => Promise<void>,
  ): (payload: unknown, helpers: Helpers) => Promise<void>;
}

/** Session-carrying graphile-worker jobs, configured once per app. */
export function graphileWorkerConsistency(
  options: JobConsistencyOptions,
): GraphileWorkerConsistency {
  const resolved = resolveJobOptions('graphileWorkerConsistency', options);
  return {
    payload: (payload, policy) => ({ ...payload, ...jobFields(resolved, policy) }),
    task: (task) => async (payload, helpers) => {
      const fields =
        typeof payload === 'object' && payload !== null
          ? (payload as JobConsistencyFields)
          : undefined;
      const plan = planJob(resolved, fields);
      if ('run' in plan) {
        return withSession(plan.run, () => task(payload as Parameters<typeof task>[0], helpers));
      }
      await helpers.addJob(
        helpers.job.task_identifier,
        { ...(payload as object), [JOB_DELAYS_FIELD]: plan.delay },
        { runAt: new Date(Date.now() + resolved.delayMs) },
      );
    },
  };
}

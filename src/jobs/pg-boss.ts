// `causeway/pg-boss`: pg-boss jobs that carry the enqueuing session into the worker, with the same
// per-job policy as `causeway/bullmq`. Structural types: Causeway never imports pg-boss.
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

/** The part of a pg-boss job the handler wrapper uses. */
export interface PgBossJobLike<Data> {
  readonly name: string;
  readonly data: Data;
}

/** The part of a `PgBoss` instance the wrapper uses (to re-queue a delayed job). */
export interface PgBossLike {
  send(name: string, data: object, options: { startAfter: Date }): Promise<unknown>;
}

export interface PgBossConsistency {
  /** `data` plus the current session and the job's policy: `boss.send(queue, jobs.data({ id }))`. */
  data<Data extends object>(data: Data, policy?: DataConsistency): Data & JobConsistencyFields;
  /**
   * A `boss.work()` handler running `handler` for each job in its session under its policy. A
   * `'delayed'` job whose floor no replica has applied is sent again with `startAfter` (its
   * delay count in the payload) and completes; a job without a session runs in a fresh one.
   */
  handler<Data extends object, Result>(
    boss: PgBossLike,
    handler: (job: PgBossJobLike<Data>) => Promise<Result>,
  ): (jobs: readonly PgBossJobLike<Data>[]) => Promise<(Result | undefined)[]>;
}

/** Session-carrying pg-boss jobs, configured once per app. */
export function pgBossConsistency(options: JobConsistencyOptions): PgBossConsistency {
  const resolved = resolveJobOptions('pgBossConsistency', options);
  return {
    data: (data, policy) => ({ ...data, ...jobFields(resolved, policy) }),
    handler: (boss, handler) => async (jobs) => {
      const results = [];
      for (const job of jobs) {
        const plan = planJob(resolved, job.data as JobConsistencyFields);
        if ('run' in plan) {
          results.push(await withSession(plan.run, () => handler(job)));
          continue;
        }
        await boss.send(
          job.name,
          { ...job.data, [JOB_DELAYS_FIELD]: plan.delay },
          { startAfter: new Date(Date.now() + resolved.delayMs) },
        );
        results.push(undefined);
      }
      return results;
    },
  };
}

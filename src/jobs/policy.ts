import { configError } from '../errors.js';
import { knownOptions, numberOption } from '../options.js';
import { newSessionId, SessionContext, type SessionState } from '../session/context.js';
import type { Router } from '../session/router.js';
import { JOB_SESSION_FIELD } from '../session/token.js';

// Which node a job's reads use, after GitLab's `data_consistency` for Sidekiq workers.

/**
 * A job's read policy. `'always'`: every read on the primary. `'sticky'`: the enqueuing session's
 * floor (a replica that applied it, else the primary). `'delayed'`: as `'sticky'`, but when no
 * replica has applied the floor yet the job is re-queued with a short delay instead of loading
 * the primary; after `maxDelays` delays it runs (on the primary if still needed).
 */
export type DataConsistency = 'always' | 'sticky' | 'delayed';

const POLICIES: readonly DataConsistency[] = ['always', 'sticky', 'delayed'];

/** The job payload field holding the policy. */
export const JOB_POLICY_FIELD = 'causewayPolicy';
/** The job payload field counting the delays a `'delayed'` job took. */
export const JOB_DELAYS_FIELD = 'causewayDelays';

/** What a job payload may carry besides its own data. */
export interface JobConsistencyFields {
  readonly [JOB_SESSION_FIELD]?: string | undefined;
  readonly [JOB_POLICY_FIELD]?: DataConsistency | undefined;
  readonly [JOB_DELAYS_FIELD]?: number | undefined;
}

/** What the job adapters need of a `consistency()` handler (any adapter's fits). */
export interface JobTokens {
  sessionForJob(session?: SessionContext): string | undefined;
  verify(token: string): SessionState;
}

export interface JobConsistencyOptions {
  /** The `consistency()` handler whose secret signs the sessions jobs carry. Required. */
  consistency: JobTokens;
  /** The router the workers' pool uses (`pool.router`): `'delayed'` asks it. Required. */
  router: Router;
  /** The policy of jobs enqueued without one. Default `'sticky'`. */
  policy?: DataConsistency;
  /** How long a `'delayed'` job waits before its next try. Default 1000 ms. */
  delayMs?: number;
  /** How many times a `'delayed'` job is delayed before it runs anyway. Default 3. */
  maxDelays?: number;
}

export interface ResolvedJobOptions {
  readonly tokens: JobTokens;
  readonly router: Router;
  readonly policy: DataConsistency;
  readonly delayMs: number;
  readonly maxDelays: number;
}

export function resolveJobOptions(
  owner: string,
  options: JobConsistencyOptions,
): ResolvedJobOptions {
  knownOptions(options, owner, ['consistency', 'router', 'policy', 'delayMs', 'maxDelays']);
  if (options.consistency === undefined) throw configError(`${owner}: consistency is required`);
  if (options.router === undefined) throw configError(`${owner}: router is required`);
  return {
    tokens: options.consistency,
    router: options.router,
    policy: checkPolicy(owner, options.policy ?? 'sticky'),
    delayMs: numberOption(owner, 'delayMs', options.delayMs, 1000, { min: 0 }),
    maxDelays: numberOption(owner, 'maxDelays', options.maxDelays, 3, { min: 0, integer: true }),
  };
}

function checkPolicy(owner: string, policy: unknown): DataConsistency {
  if (!POLICIES.includes(policy as DataConsistency)) {
    throw configError(`${owner}: policy must be 'always', 'sticky' or 'delayed'`, { policy });
  }
  return policy as DataConsistency;
}

/** The fields to add to a job's payload: the current session and the policy. */
export function jobFields(
  options: ResolvedJobOptions,
  policy: DataConsistency | undefined,
): JobConsistencyFields {
  const token = options.tokens.sessionForJob();
  return {
    ...(token === undefined ? {} : { [JOB_SESSION_FIELD]: token }),
    [JOB_POLICY_FIELD]: policy === undefined ? options.policy : checkPolicy('job', policy),
  };
}

/** How to run a job: in `session`, or delayed once more. */
export type JobPlan = { readonly run: SessionContext } | { readonly delay: number };

/**
 * The plan for a job with `fields`: a payload without a session (or with an untrusted one) runs
 * in a fresh session, never fails; `'always'` runs at level strong; `'delayed'` asks the router
 * whether a replica has applied the floor, and delays while none has and delays remain.
 */
export function planJob(
  options: ResolvedJobOptions,
  fields: JobConsistencyFields | undefined,
): JobPlan {
  const policy = POLICIES.includes(fields?.[JOB_POLICY_FIELD] as DataConsistency)
    ? (fields?.[JOB_POLICY_FIELD] as DataConsistency)
    : options.policy;
  if (policy === 'always') return { run: new SessionContext(undefined, 'strong') };
  const token = fields?.[JOB_SESSION_FIELD];
  let state: SessionState | undefined;
  try {
    state = typeof token === 'string' ? options.tokens.verify(token) : undefined;
  } catch {
    state = undefined; // forged, expired or of another cluster: a fresh session
  }
  const session = new SessionContext(state ?? { id: newSessionId() }, 'read-your-writes');
  if (policy !== 'delayed') return { run: session };
  const delays = fields?.[JOB_DELAYS_FIELD];
  const delaysSoFar = Number.isInteger(delays) && (delays as number) > 0 ? (delays as number) : 0;
  if (delaysSoFar >= options.maxDelays) return { run: session };
  const decision = options.router.decide(session);
  return decision.target === 'replica' ? { run: session } : { delay: delaysSoFar + 1 };
}

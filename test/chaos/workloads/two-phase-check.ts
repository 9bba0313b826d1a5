import type { TwoPhaseDecision, Writes } from './two-phase-child.js';

// The two-phase workload's options, bookkeeping and all-or-nothing checks (see two-phase.ts).

/** Where a kill lands: at any moment (the parent's SIGKILL after a seeded delay) or at a step. */
export const KILL_MODES = [
  'any-moment',
  'before-prepare',
  'after-read-only:users',
  'after-prepare:users',
  'after-prepare:perms',
  'before-local-commit',
  'after-local-commit',
  'after-decision',
  'background-phase-two',
  'after-commit:users',
  'after-commit:perms',
] as const;
export type KillMode = (typeof KILL_MODES)[number];

export interface TwoPhaseWorkloadOptions {
  /** Transactions the coordinator runs at once. Default: 2. */
  concurrency?: number;
  /** Pause after each transaction in each loop, to keep CPU moderate. Default: 25 ms. */
  thinkMs?: number;
  /**
   * The coordinator's `prepareTimeoutMs`: recovery presumes abort for undecided branches older
   * than this. Short, so the run sees recovery finish what kills leave. Default: 1 500 ms.
   */
  prepareTimeoutMs?: number;
  /** The coordinator's `commitWaitMs`. Default: 3 000 ms. */
  commitWaitMs?: number;
  /** Interval of the child's recovery loop. Default: 300 ms. */
  recoveryIntervalMs?: number;
  /** Time to live of the recovery lease (a killed child holds it this long). Default: 1 500 ms. */
  recoveryLeaseTtlMs?: number;
  /** Where kills may land; the fault picks one per injection. Default: `KILL_MODES`. */
  killModes?: readonly KillMode[];
  /** Longest wait for an armed step (no transaction reaches it): then a plain SIGKILL. Default: 4 000 ms. */
  armTimeoutMs?: number;
  /** Longest seeded delay before an `any-moment` kill and before the restart. Default: 300 ms. */
  maxDelayMs?: number;
  /** Longest time `verify()` runs recovery before it reports what is left. Default: 60 000 ms. */
  recoveryDeadlineMs?: number;
}

/** What a transaction's client was told (or `begun`: it never heard). */
export type GidStatus =
  | 'begun'
  | 'committed'
  | 'aborted'
  | 'in-doubt-commit'
  | 'in-doubt'
  | 'failed';

/** A transaction left prepared by a kill, with what the log said right after the kill. */
export interface InDoubtAfterKill {
  readonly kill: number;
  readonly branches: string[];
  readonly decision: 'commit' | 'abort' | undefined;
}

export interface TwoPhaseStats {
  transactions: number;
  committed: number;
  aborted: number;
  inDoubt: number;
  failed: number;
  kills: number;
  killsByMode: Record<string, number>;
  /** Kills that landed at the armed step (a transaction was stopped there). */
  killsAtStep: number;
  /** Armed kills no transaction reached in time, done as a plain SIGKILL instead. */
  killsAtTimeout: number;
  coordinatorStarts: number;
  /** Transactions with a branch prepared right after a kill (in doubt until recovery). */
  inDoubtAfterKills: number;
  /** Of those, how they ended (filled by `verify()`). */
  inDoubtCommitted: number;
  inDoubtRolledBack: number;
  /** Kills after which the post-kill snapshot could not be read (a server was down). */
  snapshotsMissed: number;
  recoveryErrors: number;
  heuristics: number;
  /** What the final recovery in `verify()` still had to do. */
  finalRecovery: {
    rounds: number;
    committed: number;
    rolledBack: number;
    presumedAborted: number;
    forgotten: number;
  };
}

export function newStats(): TwoPhaseStats {
  return {
    transactions: 0,
    committed: 0,
    aborted: 0,
    inDoubt: 0,
    failed: 0,
    kills: 0,
    killsByMode: {},
    killsAtStep: 0,
    killsAtTimeout: 0,
    coordinatorStarts: 0,
    inDoubtAfterKills: 0,
    inDoubtCommitted: 0,
    inDoubtRolledBack: 0,
    snapshotsMissed: 0,
    recoveryErrors: 0,
    heuristics: 0,
    finalRecovery: { rounds: 0, committed: 0, rolledBack: 0, presumedAborted: 0, forgotten: 0 },
  };
}

/** What the databases hold after the final recovery, and what the run recorded. */
export interface OutcomeInput {
  readonly inUsers: ReadonlySet<string>;
  readonly inPerms: ReadonlySet<string>;
  /** What each transaction's client was told. */
  readonly gids: ReadonlyMap<string, GidStatus>;
  /** The participants each transaction wrote. */
  readonly writes: ReadonlyMap<string, Writes>;
  readonly inDoubtAfterKill: ReadonlyMap<string, InDoubtAfterKill>;
  /** Every gid left in `pg_prepared_xacts`, by server. */
  readonly prepared: Readonly<Record<'primary' | 'primary2', string[]>>;
  /** The decision log's rows for this coordinator. */
  readonly decisions: ReadonlyMap<string, TwoPhaseDecision>;
  /** Gets `inDoubtCommitted` and `inDoubtRolledBack`. */
  readonly stats: TwoPhaseStats;
}

/**
 * All or nothing: every transaction's row is in every database it wrote or in none (and in no
 * other); acknowledged commits are there, `TXN_ABORTED` ones are not; what a kill left in doubt
 * ended as the decision logged right after the kill said; nothing is left prepared; no commit
 * decision remains, and no abort decision has rows.
 */
export function checkOutcomes(input: OutcomeInput): {
  failures: string[];
  lostWrites: number;
  violations: number;
} {
  const { inUsers, inPerms, gids, writes, stats } = input;
  const failures: string[] = [];
  let lostWrites = 0;
  let violations = 0;
  const where = (gid: string) => ({ users: inUsers.has(gid), perms: inPerms.has(gid) });
  const wrote = (gid: string): Writes => writes.get(gid) ?? ['users', 'perms'];
  const everywhere = (gid: string) => wrote(gid).every((name) => where(gid)[name]);
  const nowhere = (gid: string) => !inUsers.has(gid) && !inPerms.has(gid);
  for (const gid of new Set([...inUsers, ...inPerms])) {
    const found = where(gid);
    const stray = (['users', 'perms'] as const).filter((n) => found[n] && !wrote(gid).includes(n));
    if (stray.length > 0) {
      violations++;
      failures.push(
        `row in a database the transaction did not write: ${gid} in ${stray.join(', ')}`,
      );
    }
    if (!everywhere(gid)) {
      lostWrites++;
      failures.push(`half-applied: ${gid} only in ${found.users ? 'users' : 'perms'}`);
    }
    if (!gids.has(gid)) {
      violations++;
      failures.push(`row of a transaction no client began: ${gid}`);
    }
  }
  for (const [gid, status] of gids) {
    if ((status === 'committed' || status === 'in-doubt-commit') && !everywhere(gid)) {
      lostWrites++;
      failures.push(`acknowledged (${status}) but missing: ${gid}`);
    }
    if (status === 'aborted' && !nowhere(gid)) {
      violations++;
      failures.push(`TXN_ABORTED but present: ${gid}`);
    }
  }
  for (const [gid, { kill, decision }] of input.inDoubtAfterKill) {
    if (everywhere(gid)) stats.inDoubtCommitted++;
    if (nowhere(gid)) stats.inDoubtRolledBack++;
    const expected = decision === 'commit' ? everywhere(gid) : nowhere(gid);
    if (!expected) {
      violations++;
      failures.push(
        `in doubt after kill ${kill} with decision ${decision ?? 'none'} ended ` +
          `${everywhere(gid) ? 'committed' : nowhere(gid) ? 'rolled back' : 'half-applied'}: ${gid}`,
      );
    }
  }

  for (const [name, left] of Object.entries(input.prepared)) {
    if (left.length > 0) {
      violations += left.length;
      failures.push(`pg_prepared_xacts on ${name} not empty: ${left.join(', ')}`);
    }
  }
  for (const [gid, decision] of input.decisions) {
    if (decision === 'commit') {
      violations++;
      failures.push(`commit decision not forgotten after recovery: ${gid}`);
    } else if (!nowhere(gid)) {
      violations++;
      failures.push(`abort decision but rows present: ${gid}`);
    }
  }
  return { failures, lostWrites, violations };
}

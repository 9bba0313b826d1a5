import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { CausewayError, ErrorCode, isCausewayError } from '../errors.js';
import type { Lease, LeaseManager } from '../fencing/token.js';
import { Attr, addToCounter, CounterName, SpanName, withSpan } from '../telemetry.js';
import type { Decision, DecisionLog, DecisionRecord } from './decision-log.js';
import { coordinatorPrefix, tryParseGid } from './gid.js';
import type { BranchStatus, Participant, PreparedBranch } from './participant.js';

/**
 * A branch whose outcome contradicts the logged decision: someone (an operator, another tool)
 * committed or rolled it back outside the coordinator. Reported, never swallowed.
 */
export interface HeuristicEvent {
  /** The branch's gid. */
  readonly gid: string;
  readonly participant: string;
  /** The logged decision. */
  readonly decision: Decision;
  /** What the participant says became of the branch (`'unknown'`: it cannot tell any more). */
  readonly observed: BranchStatus;
}

/** What one recovery round did. Gids are branch gids except in `forgotten` and `presumedAborted`. */
export interface RecoveryReport {
  readonly committed: string[];
  readonly rolledBack: string[];
  /** Transactions recovery found undecided and recorded as aborted (presumed abort). */
  readonly presumedAborted: string[];
  /** Decisions deleted because no branch of theirs remains prepared. */
  readonly forgotten: string[];
  readonly heuristics: HeuristicEvent[];
  /** Participants, branches or decisions it could not reach this round (retried next round). */
  readonly failures: { participant?: string; gid?: string; error: unknown }[];
}

/** Outcome of driving one branch to its decision. */
export type BranchFinish = { kind: 'done' } | { kind: 'heuristic'; event: HeuristicEvent };

/**
 * Commits or rolls back one prepared branch according to `decision`. When the participant says
 * the branch no longer exists, its `xid` tells whether someone else already did the same (fine)
 * or the opposite (a heuristic outcome). Rejects when the participant is unreachable or the
 * branch is busy (retry later).
 */
export async function finishBranch(
  participant: Participant,
  name: string,
  gid: string,
  decision: Decision,
  xid: string | undefined,
): Promise<BranchFinish> {
  const finished =
    decision === 'commit'
      ? await participant.commitPrepared(gid)
      : await participant.rollbackPrepared(gid);
  if (finished) return { kind: 'done' };
  const observed = xid === undefined ? 'unknown' : await participant.branchStatus(xid);
  if (observed === 'in progress') {
    // Gone from the prepared list yet not finished: another session is committing it right now.
    throw new CausewayError(ErrorCode.TXN_IN_DOUBT, 'branch is being finished elsewhere', {
      details: { gid, participant: name },
    });
  }
  const expected = decision === 'commit' ? 'committed' : 'aborted';
  if (observed === expected) return { kind: 'done' };
  return { kind: 'heuristic', event: { gid, participant: name, decision, observed } };
}

/** Counts and announces a heuristic outcome. */
export function reportHeuristic(
  event: HeuristicEvent,
  onHeuristic: (event: HeuristicEvent) => void,
): void {
  addToCounter(CounterName.TWO_PC_OUTCOMES, {
    [Attr.OUTCOME]: 'heuristic',
    [Attr.PARTICIPANT]: event.participant,
  });
  try {
    onHeuristic(event);
  } catch {
    // A reporting hook must never break commit or recovery.
  }
}

export interface RecoveryDeps {
  readonly coordinatorId: string;
  readonly log: DecisionLog;
  readonly participants: ReadonlyMap<string, Participant>;
  /** Undecided branches younger than this are left alone: their coordinator may be live. */
  readonly prepareTimeoutMs: number;
  /** Abort decisions are kept this long after being recorded (see the coordinator's docs). */
  readonly abortRetentionMs: number;
  readonly onHeuristic: (event: HeuristicEvent) => void;
}

type Listing = Map<string, PreparedBranch[]>;

async function listAll(deps: RecoveryDeps, prefix: string, report: RecoveryReport) {
  const listing: Listing = new Map();
  await Promise.all(
    [...deps.participants].map(async ([name, participant]) => {
      try {
        const branches = await participant.listPrepared(prefix);
        // Only this participant's own branches: two participants may share a server.
        listing.set(
          name,
          branches.filter((branch) => tryParseGid(branch.gid)?.participant === name),
        );
      } catch (error) {
        report.failures.push({ participant: name, error });
      }
    }),
  );
  return listing;
}

/**
 * One recovery round. The order is what makes it safe next to live transactions (as Citus does):
 * list prepared branches, read the decisions, list prepared branches again. A branch is presumed
 * aborted only if it was in both lists, has no decision and is older than the prepare timeout,
 * and then only after an abort decision is recorded: the log is write-once, so a commit decision
 * that a live coordinator recorded meanwhile wins and recovery commits instead.
 *
 * `ensureHeld` is called before every change; it rejects when the recovery lease is lost.
 */
export async function recoverOnce(
  deps: RecoveryDeps,
  ensureHeld: () => Promise<void> = async () => {},
): Promise<RecoveryReport> {
  const prefix = coordinatorPrefix(deps.coordinatorId);
  const report: RecoveryReport = {
    committed: [],
    rolledBack: [],
    presumedAborted: [],
    forgotten: [],
    heuristics: [],
    failures: [],
  };
  return withSpan(
    SpanName.TWO_PC_RECOVER,
    { [Attr.COORDINATOR]: deps.coordinatorId },
    async (span) => {
      const first = await listAll(deps, prefix, report);
      const decisions = new Map<string, DecisionRecord>();
      for (const record of await deps.log.list(prefix)) decisions.set(record.gid, record);
      const second = await listAll(deps, prefix, report);

      // The second list's branches by transaction; a transaction is presumed aborted when any
      // of its branches qualifies (its coordinator's prepare phase outlasted the timeout).
      const byTxn = new Map<string, { name: string; branch: PreparedBranch; stale: boolean }[]>();
      for (const [name, branches] of second) {
        const seenBefore = new Set((first.get(name) ?? []).map((branch) => branch.gid));
        for (const branch of branches) {
          const txnGid = tryParseGid(branch.gid)!.txnGid;
          const stale = seenBefore.has(branch.gid) && branch.ageMs >= deps.prepareTimeoutMs;
          byTxn.set(txnGid, [...(byTxn.get(txnGid) ?? []), { name, branch, stale }]);
        }
      }
      // Transactions with a branch still prepared after this round.
      const remaining = new Set<string>();
      await Promise.all(
        [...byTxn].map(async ([txnGid, branches]) => {
          let decision = decisions.get(txnGid)?.decision;
          try {
            if (decision === undefined && branches.some((b) => b.stale)) {
              await ensureHeld();
              const record = await deps.log.record(txnGid, 'abort', [...deps.participants.keys()]);
              decisions.set(txnGid, record);
              decision = record.decision;
              if (decision === 'abort') report.presumedAborted.push(txnGid);
            }
          } catch (error) {
            if (isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) throw error;
            report.failures.push({ gid: txnGid, error });
          }
          if (decision === undefined) {
            remaining.add(txnGid);
            return;
          }
          await Promise.all(
            branches.map(async ({ name, branch }) => {
              try {
                await ensureHeld();
                const finish = await finishBranch(
                  deps.participants.get(name)!,
                  name,
                  branch.gid,
                  decision,
                  branch.xid,
                );
                if (finish.kind === 'heuristic') {
                  report.heuristics.push(finish.event);
                  reportHeuristic(finish.event, deps.onHeuristic);
                } else {
                  (decision === 'commit' ? report.committed : report.rolledBack).push(branch.gid);
                }
              } catch (error) {
                if (isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) throw error;
                report.failures.push({ participant: name, gid: branch.gid, error });
                remaining.add(txnGid);
              }
            }),
          );
        }),
      );

      // A commit decision is recorded only after every branch prepared, so a branch of it that
      // is not in the second list is finished for good. Abort decisions are kept for a while:
      // they stop a coordinator that stalled past the prepare timeout from committing late.
      const forget: string[] = [];
      for (const record of decisions.values()) {
        const listedEverywhere = record.participants.every((name) => second.has(name));
        const oldEnough = record.decision === 'commit' || record.ageMs >= deps.abortRetentionMs;
        if (listedEverywhere && oldEnough && !remaining.has(record.gid)) forget.push(record.gid);
      }
      if (forget.length > 0) {
        await ensureHeld();
        await deps.log.forget(forget);
        report.forgotten.push(...forget);
      }
      span.setAttributes({
        [Attr.RECOVER_COMMITTED]: report.committed.length,
        [Attr.RECOVER_ROLLED_BACK]: report.rolledBack.length,
        [Attr.RECOVER_FAILURES]: report.failures.length,
      });
      if (report.presumedAborted.length > 0) {
        addToCounter(
          CounterName.TWO_PC_OUTCOMES,
          { [Attr.OUTCOME]: 'presumed-abort' },
          report.presumedAborted.length,
        );
      }
      return report;
    },
  );
}

export interface RecovererOptions {
  readonly leases: LeaseManager | undefined;
  readonly leaseTtlMs: number;
}

/**
 * Runs recovery rounds one at a time, under a lease per coordinator id when a `LeaseManager` is
 * given, so only one process recovers a coordinator's transactions at a time. (Safety does not
 * rest on the lease: the write-once log keeps concurrent recoverers consistent; the lease keeps
 * them from doing the same work twice.)
 */
export class Recoverer {
  private readonly deps: RecoveryDeps;
  private readonly options: RecovererOptions;
  /** One holder id per recoverer, so it can take its own lease back after a local lapse. */
  private readonly holder = `recovery-${randomUUID()}`;
  private lease: Lease | undefined;
  /** Local monotonic time after which the lease may have lapsed. */
  private leaseValidUntil = 0;
  private leaseRenewAfter = 0;
  private round: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(deps: RecoveryDeps, options: RecovererOptions) {
    this.deps = deps;
    this.options = options;
  }

  get resource(): string {
    return `causeway:2pc:recovery:${this.deps.coordinatorId}`;
  }

  /** Runs one round after any round in progress. Rejects with `LEASE_NOT_HELD` if another holds it. */
  runOnce(): Promise<RecoveryReport> {
    const run = this.round.then(async () => {
      await this.ensureHeld();
      return recoverOnce(this.deps, () => this.ensureHeld());
    });
    this.round = run.catch(() => {});
    return run;
  }

  /** Starts a round every `intervalMs` (unref'd timer); errors go to `onError`. */
  start(intervalMs: number, onError: (error: unknown) => void): void {
    if (this.timer !== undefined || this.closed) return;
    const tick = async () => {
      try {
        await this.runOnce();
      } catch (error) {
        // Another process holding the lease is normal: this one stands by.
        if (!isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) onError(error);
      }
      if (!this.closed) {
        this.timer = setTimeout(tick, intervalMs);
        this.timer.unref();
      }
    };
    this.timer = setTimeout(tick, 0);
    this.timer.unref();
  }

  /** Stops the loop, waits for a round in progress and releases the lease. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.round;
    await this.releaseLease();
  }

  /** Releases the lease after a one-off round (the loop keeps it between rounds). */
  async releaseUnlessLooping(): Promise<void> {
    if (this.timer === undefined) await this.releaseLease();
  }

  private async releaseLease(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    this.leaseValidUntil = 0;
    if (lease !== undefined) await lease.release().catch(() => {});
  }

  private async ensureHeld(): Promise<void> {
    const { leases, leaseTtlMs } = this.options;
    if (leases === undefined) return;
    const now = performance.now();
    if (this.lease !== undefined && now < this.leaseRenewAfter) return;
    const started = now;
    try {
      this.lease =
        this.lease !== undefined && now < this.leaseValidUntil
          ? await this.lease.renew()
          : await leases.acquire(this.resource, { ttlMs: leaseTtlMs, holder: this.holder });
    } catch (error) {
      this.lease = undefined;
      this.leaseValidUntil = 0;
      if (isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) throw error;
      throw new CausewayError(ErrorCode.LEASE_NOT_HELD, 'could not take the recovery lease', {
        cause: error,
        details: { resource: this.resource },
      });
    }
    // Measured from before the call, so the local view never outlives the store's.
    this.leaseValidUntil = started + leaseTtlMs * 0.8;
    this.leaseRenewAfter = started + leaseTtlMs / 3;
  }
}

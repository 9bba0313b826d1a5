import { performance } from 'node:perf_hooks';
import type { Span } from '@opentelemetry/api';
import { CausewayError, ErrorCode, isCausewayError } from '../errors.js';
import { Attr, SpanName, TwoPhasePath } from '../telemetry.js';
import type { Decision, DecisionRecord } from './decision-log.js';
import { branchGid } from './gid.js';
import type { TwoPhaseStep, TwoPhaseStepInfo } from './options.js';
import type { ParticipantBranch, PreparedInfo } from './participant.js';
import { PhaseTwo } from './phase-two.js';
import {
  aborted,
  type ProtocolConfig,
  type ProtocolHost,
  phase,
  rollbackAll,
  runStep,
  type StoppedAtStep,
} from './protocol-base.js';

/**
 * Commits the branches a transaction function left open, by the cheapest safe path: read-only
 * branches end at once; a lone writer commits in one phase; otherwise the writers are prepared
 * and the decision is either committed with the log's participant or recorded in the log
 * (batched), then phase two commits the prepared branches.
 */
export class CommitProtocol {
  private readonly phaseTwo: PhaseTwo;

  constructor(
    private readonly config: ProtocolConfig,
    private readonly host: ProtocolHost,
  ) {
    this.phaseTwo = new PhaseTwo(config, host);
  }

  /**
   * Ends `open` (every branch begun); resolves once committed, else rejects (see the
   * coordinator). With `phaseTwo: 'background'` it resolves at the commit point, to the phase
   * two still running (`background`, which never rejects), if any.
   */
  async commit(
    gid: string,
    open: Map<string, ParticipantBranch>,
    span: Span,
  ): Promise<{ background: Promise<void> } | undefined> {
    try {
      if (this.config.onStep) await this.step('before-prepare', { gid });
    } catch (error) {
      await rollbackAll(open);
      throw error;
    }
    const writers = this.config.readOnly ? await this.endReadOnly(gid, open) : open;
    if (writers.size === 0) {
      span.setAttribute(Attr.TWO_PC_PATH, TwoPhasePath.READ_ONLY);
      return undefined;
    }
    const [first] = writers;
    if (writers.size === 1 && this.config.onePhase && first![1].commit !== undefined) {
      span.setAttribute(Attr.TWO_PC_PATH, TwoPhasePath.ONE_PHASE);
      await this.commitOnePhase(gid, first![0], first![1], span);
      return undefined;
    }
    const logName = this.config.logParticipant;
    const withLog =
      logName !== undefined && writers.get(logName)?.commit !== undefined ? logName : undefined;
    const toPrepare = new Map(writers);
    if (withLog !== undefined) toPrepare.delete(withLog);
    let prepared: Map<string, PreparedInfo>;
    try {
      prepared = await this.prepareAll(gid, toPrepare, span);
    } catch (error) {
      if (withLog !== undefined) await writers.get(withLog)!.rollback();
      throw error;
    }
    const names = [...writers.keys()];
    span.setAttribute(
      Attr.TWO_PC_PATH,
      withLog === undefined ? TwoPhasePath.LOGGED : TwoPhasePath.COMMIT_WITH_LOG,
    );
    const decision =
      withLog === undefined
        ? await this.decide(gid, names, prepared, span)
        : await this.commitWithLog(gid, withLog, writers.get(withLog)!, names, prepared, span);
    if (this.config.onStep) await this.step('after-decision', { gid });
    if (decision.decision === 'abort') {
      // Recovery presumed abort while this coordinator stalled (or the log's participant did
      // not commit); obey the log.
      await this.phaseTwo.rollbackPrepared(gid, prepared);
      throw aborted(gid, decision.reason, decision.cause);
    }
    if (this.config.backgroundPhaseTwo && prepared.size > 0) {
      // Wrapped: an async function returning a promise would wait for it.
      return { background: this.phaseTwo.commitInBackground(gid, prepared, span) };
    }
    await this.phaseTwo.commitAll(gid, prepared, span);
    return undefined;
  }

  /** Runs the step hook (callers skip the call, and its await, when there is none). */
  private step(step: TwoPhaseStep, info: TwoPhaseStepInfo): Promise<void> {
    return runStep(this.config.onStep, step, info);
  }

  /** Asks every branch for its read-only vote, ends those that wrote nothing; returns the rest. */
  private async endReadOnly(
    gid: string,
    open: Map<string, ParticipantBranch>,
  ): Promise<Map<string, ParticipantBranch>> {
    const asked = [...open.values()].map((branch) => branch.isReadOnly?.() ?? false);
    // Writers that knew it without a round trip (the common case): nothing to wait for.
    if (asked.every((vote) => vote === false)) return open;
    const votes = await Promise.allSettled(asked);
    const failed = votes.find((vote) => vote.status === 'rejected');
    if (failed !== undefined) {
      await rollbackAll(open);
      throw aborted(gid, 'a participant could not vote', failed.reason);
    }
    const writers = new Map<string, ParticipantBranch>();
    let stopped: StoppedAtStep | undefined;
    await Promise.all(
      [...open].map(async ([name, branch], index) => {
        const vote = votes[index] as PromiseFulfilledResult<boolean>;
        if (!vote.value) {
          writers.set(name, branch);
          return;
        }
        // Nothing to commit: rolling back ends it the same and cannot fail.
        await branch.rollback();
        try {
          if (this.config.onStep) await this.step('after-read-only', { gid, participant: name });
        } catch (error) {
          stopped ??= error as StoppedAtStep;
        }
      }),
    );
    if (stopped !== undefined) {
      await rollbackAll(writers);
      throw stopped;
    }
    return writers;
  }

  /** One writer: its plain local commit is the whole protocol. */
  private commitOnePhase(
    gid: string,
    name: string,
    branch: ParticipantBranch,
    parent: Span,
  ): Promise<void> {
    return phase(parent, SpanName.TWO_PC_COMMIT, gid, async () => {
      try {
        if (this.config.onStep) await this.step('before-local-commit', { gid, participant: name });
      } catch (error) {
        await branch.rollback();
        throw error;
      }
      try {
        await branch.commit!();
      } catch (error) {
        if (isCausewayError(error, ErrorCode.TXN_ABORTED)) {
          throw aborted(gid, 'the participant did not commit', error);
        }
        throw new CausewayError(
          ErrorCode.TXN_IN_DOUBT,
          "the one-phase commit's reply was lost: the transaction may or may not have committed",
          { cause: error, details: { gid, decision: 'unknown', participant: name } },
        );
      }
      if (this.config.onStep) await this.step('after-local-commit', { gid, participant: name });
    });
  }

  /** Phase one: prepares every branch in parallel within `prepareTimeoutMs`. */
  private prepareAll(
    gid: string,
    branches: Map<string, ParticipantBranch>,
    parent: Span,
  ): Promise<Map<string, PreparedInfo>> {
    const prepared = new Map<string, PreparedInfo>();
    if (branches.size === 0) return Promise.resolve(prepared);
    return phase(parent, SpanName.TWO_PC_PREPARE, gid, async () => {
      const started = performance.now();
      const { prepareTimeoutMs } = this.config;
      let stopped: StoppedAtStep | undefined;
      const attempts = [...branches].map(async ([name, branch]) => {
        const info = await branch.prepare(branchGid(gid, name));
        prepared.set(name, info);
        try {
          if (this.config.onStep) await this.step('after-prepare', { gid, participant: name });
        } catch (error) {
          stopped ??= error as StoppedAtStep;
        }
        return info;
      });
      const settled = await this.host.deadlines
        .within(Promise.allSettled(attempts), prepareTimeoutMs, () => undefined)
        .catch(() => undefined);
      if (stopped !== undefined) throw stopped;
      // Checked after the wait too: recovery presumes abort for branches older than this.
      const late = performance.now() - started > prepareTimeoutMs;
      const failure =
        settled?.find((outcome) => outcome.status === 'rejected')?.reason ??
        (late || settled === undefined
          ? new CausewayError(
              ErrorCode.TXN_ABORTED,
              `prepare took longer than prepareTimeoutMs (${prepareTimeoutMs} ms)`,
            )
          : undefined);
      if (failure === undefined) return prepared;

      // Abort: a branch whose prepare failed may still be prepared (a reply can be lost), so
      // every gid is rolled back once its prepare settles; prepares still running after the
      // timeout roll back when they finish, without holding up the caller.
      const rollbacks = [...branches.keys()].map((name, index) =>
        attempts[index]!.then(
          () => undefined,
          () => undefined,
        )
          .then(() => this.config.participants.get(name)!.rollbackPrepared(branchGid(gid, name)))
          .catch(() => false),
      );
      if (settled !== undefined) await Promise.all(rollbacks);
      throw aborted(gid, 'a participant did not prepare', failure);
    });
  }

  /** Records the commit decision in the log (batched when enabled). */
  private decide(
    gid: string,
    names: string[],
    prepared: Map<string, PreparedInfo>,
    parent: Span,
  ): Promise<Outcome> {
    return phase(parent, SpanName.TWO_PC_DECIDE, gid, async (span) => {
      const record = await this.record(gid, 'commit', names, [...prepared.keys()]);
      span.setAttribute(Attr.OUTCOME, record.decision);
      return {
        decision: record.decision,
        reason: 'recovery aborted the transaction while it was preparing',
        cause: undefined,
      };
    });
  }

  /**
   * Last-resource commit: the log's participant inserts the decision in its own transaction and
   * commits; that commit is the commit point. When its outcome is unknown (reply lost) the
   * write-once log settles it: recording an abort waits for the branch's insert, if still in
   * flight, and returns the commit if that insert committed.
   */
  private commitWithLog(
    gid: string,
    name: string,
    branch: ParticipantBranch,
    names: string[],
    prepared: Map<string, PreparedInfo>,
    parent: Span,
  ): Promise<Outcome> {
    return phase(parent, SpanName.TWO_PC_DECIDE, gid, async (span) => {
      try {
        if (this.config.onStep) await this.step('before-local-commit', { gid, participant: name });
      } catch (error) {
        await branch.rollback();
        throw error;
      }
      let failure: unknown;
      try {
        await this.config.log.commitInBranch!(branch, gid, names);
        span.setAttribute(Attr.OUTCOME, 'commit');
        return { decision: 'commit', reason: '', cause: undefined };
      } catch (error) {
        // Ends the branch if the failure came before its commit (a no-op after it).
        await branch.rollback();
        failure = error;
      }
      const reason = 'the participant holding the decision log did not commit';
      // Not committed (refused, or a decision existed: recovery's abort), and no one else can
      // record a commit.
      if (isCausewayError(failure, ErrorCode.TXN_ABORTED)) {
        return { decision: 'abort', reason, cause: failure };
      }
      const record = await this.record(gid, 'abort', names, [...prepared.keys()]);
      span.setAttribute(Attr.OUTCOME, record.decision);
      return { decision: record.decision, reason, cause: failure };
    });
  }

  /** Writes `decision` (write-once: resolves to the one that holds), retrying within `commitWaitMs`. */
  private async record(
    gid: string,
    decision: Decision,
    names: string[],
    pending: string[],
  ): Promise<DecisionRecord> {
    const { commitWaitMs, log, batcher } = this.config;
    const deadline = performance.now() + commitWaitMs;
    let delay = this.config.retryInitialDelayMs;
    for (;;) {
      try {
        const write =
          batcher === undefined
            ? log.record(gid, decision, names)
            : batcher.record({ gid, decision, participants: names });
        return await this.host.deadlines.within(
          write,
          Math.max(0, deadline - performance.now()),
          () => new Error(`the decision log did not answer within ${commitWaitMs} ms`),
        );
      } catch (error) {
        if (this.host.isClosed() || performance.now() + delay > deadline) {
          throw new CausewayError(
            ErrorCode.TXN_IN_DOUBT,
            'could not record the decision; recovery will commit or roll back every branch',
            { cause: error, details: { gid, decision: 'unknown', pending } },
          );
        }
        await this.host.deadlines.sleep(delay);
        delay = Math.min(delay * 2, this.config.retryMaxDelayMs);
      }
    }
  }
}

/** The decision that holds, and why when it is abort. */
interface Outcome {
  readonly decision: Decision;
  readonly reason: string;
  readonly cause: unknown;
}

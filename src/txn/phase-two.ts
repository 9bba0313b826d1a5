import type { Span } from '@opentelemetry/api';
import { CausewayError, ErrorCode } from '../errors.js';
import { SpanName } from '../telemetry.js';
import { branchGid } from './gid.js';
import type { TwoPhaseStep, TwoPhaseStepInfo } from './options.js';
import type { PreparedInfo } from './participant.js';
import {
  type ProtocolConfig,
  type ProtocolHost,
  phase,
  runStep,
  StoppedAtStep,
} from './protocol-base.js';
import {
  type BranchFinish,
  finishBranch,
  type HeuristicEvent,
  reportHeuristic,
} from './recovery.js';

/** Phase two: drives prepared branches to the decision, retrying until each is done. */
export class PhaseTwo {
  constructor(
    private readonly config: ProtocolConfig,
    private readonly host: ProtocolHost,
  ) {}

  /**
   * Phase two after `transaction()` resolved (`phaseTwo: 'background'`): the returned task never
   * rejects; its failures go to `onRecoveryError` (recovery finishes what it left), and the
   * coordinator keeps it until `close()`.
   */
  commitInBackground(
    gid: string,
    prepared: Map<string, PreparedInfo>,
    parent: Span,
  ): Promise<void> {
    const task = (async () => {
      if (this.config.onStep) await this.step('background-phase-two', { gid });
      await this.commitAll(gid, prepared, parent);
    })().catch((error: unknown) =>
      this.config.onRecoveryError(error instanceof StoppedAtStep ? error.error : error),
    );
    this.host.track(task);
    return task;
  }

  /** Phase two: commits every prepared branch in parallel, retrying each until done. */
  commitAll(gid: string, prepared: Map<string, PreparedInfo>, parent: Span): Promise<void> {
    if (prepared.size === 0) return Promise.resolve();
    return phase(parent, SpanName.TWO_PC_COMMIT, gid, async () => {
      const pending = new Set(prepared.keys());
      let stopped: StoppedAtStep | undefined;
      const tasks = [...prepared].map(async ([name, info]) => {
        const finish = await this.commitUntilDone(name, branchGid(gid, name), info.xid);
        pending.delete(name);
        if (finish.kind === 'done') {
          try {
            if (this.config.onStep) await this.step('after-commit', { gid, participant: name });
          } catch (error) {
            stopped ??= error as StoppedAtStep;
          }
        }
        return finish;
      });
      const all = Promise.allSettled(tasks);
      const settled = await this.host.deadlines
        .within(all, this.config.commitWaitMs, () => undefined)
        .catch(() => undefined);
      if (stopped !== undefined) throw stopped;
      if (settled === undefined) {
        this.host.track(all);
        throw new CausewayError(
          ErrorCode.TXN_IN_DOUBT,
          'the transaction is committed but not yet applied on every participant; ' +
            'phase two goes on in the background and recovery finishes it',
          { details: { gid, decision: 'commit', pending: [...pending] } },
        );
      }
      const heuristics: HeuristicEvent[] = [];
      for (const outcome of settled) {
        if (outcome.status === 'fulfilled' && outcome.value.kind === 'heuristic') {
          heuristics.push(outcome.value.event);
        }
      }
      if (heuristics.length > 0) {
        throw new CausewayError(
          ErrorCode.TXN_IN_DOUBT,
          'heuristic outcome: a branch was finished outside the coordinator and is not (or not ' +
            'provably) committed although the decision was commit; see details.heuristics',
          { details: { gid, decision: 'commit', heuristic: true, heuristics } },
        );
      }
      if (pending.size > 0) {
        // Only when closed mid-way: recovery finishes.
        throw new CausewayError(ErrorCode.TXN_IN_DOUBT, 'closed before phase two finished', {
          details: { gid, decision: 'commit', pending: [...pending] },
        });
      }
    });
  }

  private async commitUntilDone(name: string, gid: string, xid: string): Promise<BranchFinish> {
    const participant = this.config.participants.get(name)!;
    let delay = this.config.retryInitialDelayMs;
    for (;;) {
      try {
        const finish = await finishBranch(participant, name, gid, 'commit', xid);
        if (finish.kind === 'heuristic') reportHeuristic(finish.event, this.config.onHeuristic);
        return finish;
      } catch (error) {
        if (this.host.isClosed()) throw error;
        await this.host.deadlines.sleep(delay * (0.5 + Math.random() / 2));
        delay = Math.min(delay * 2, this.config.retryMaxDelayMs);
      }
    }
  }

  async rollbackPrepared(gid: string, prepared: Map<string, PreparedInfo>) {
    await Promise.allSettled(
      [...prepared].map(([name, info]) =>
        finishBranch(
          this.config.participants.get(name)!,
          name,
          branchGid(gid, name),
          'abort',
          info.xid,
        ),
      ),
    );
  }

  private step(step: TwoPhaseStep, info: TwoPhaseStepInfo): Promise<void> {
    return runStep(this.config.onStep, step, info);
  }
}

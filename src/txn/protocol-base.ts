import type { Span } from '@opentelemetry/api';
import { CausewayError, ErrorCode } from '../errors.js';
import { Attr, type SpanName, withSpan } from '../telemetry.js';
import type { Deadlines } from './deadlines.js';
import type { DecisionBatcher } from './decision-batcher.js';
import type { DecisionLog } from './decision-log.js';
import type { TwoPhaseHooks, TwoPhaseStep, TwoPhaseStepInfo } from './options.js';
import type { Participant, ParticipantBranch } from './participant.js';
import type { HeuristicEvent } from './recovery.js';

// What the commit protocol's parts (protocol.ts, phase-two.ts) share.

/** What the protocol needs from the coordinator's resolved options. */
export interface ProtocolConfig {
  readonly log: DecisionLog;
  readonly participants: ReadonlyMap<string, Participant>;
  readonly prepareTimeoutMs: number;
  readonly commitWaitMs: number;
  readonly retryInitialDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly onHeuristic: (event: HeuristicEvent) => void;
  readonly onStep: TwoPhaseHooks['onStep'];
  readonly onePhase: boolean;
  readonly readOnly: boolean;
  /** The participant whose commit carries the decision (commitWithLog), if any. */
  readonly logParticipant: string | undefined;
  /** Set when decisions are batched. */
  readonly batcher: DecisionBatcher | undefined;
  /** `phaseTwo: 'background'`: resolve at the commit point, commit prepared branches after. */
  readonly backgroundPhaseTwo: boolean;
  /** Told of background phase two's failures. */
  readonly onRecoveryError: (error: unknown) => void;
}

/** What the protocol needs from its coordinator while it runs. */
export interface ProtocolHost {
  readonly deadlines: Deadlines;
  isClosed(): boolean;
  /** Keeps a phase-two task that outlived its `transaction()` call until `close()`. */
  track(task: Promise<unknown>): void;
}

/** A step hook threw: the coordinator stops dead there (see `TwoPhaseHooks`). */
export class StoppedAtStep {
  constructor(readonly error: unknown) {}
}

/** Runs the step hook, turning a throw into `StoppedAtStep`. */
export async function runStep(
  onStep: TwoPhaseHooks['onStep'],
  step: TwoPhaseStep,
  info: TwoPhaseStepInfo,
): Promise<void> {
  try {
    await onStep?.(step, info);
  } catch (error) {
    throw new StoppedAtStep(error);
  }
}

/**
 * Runs one phase in a child span of `parent`. When `parent` is not recording (no SDK registered,
 * or sampled out, whose children parent-based sampling drops too) `fn` runs directly on
 * `parent`: no span objects or context switches on the hot path for nothing.
 */
export function phase<T>(
  parent: Span,
  name: SpanName,
  gid: string,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return parent.isRecording() ? withSpan(name, { [Attr.GID]: gid }, fn) : fn(parent);
}

export function aborted(gid: string, message: string, cause: unknown): CausewayError {
  const reason = cause instanceof Error ? `: ${cause.message}` : '';
  return new CausewayError(ErrorCode.TXN_ABORTED, `${message}${reason}`, {
    cause,
    details: { gid },
  });
}

/** Rolls back branches that were begun but not prepared (their connections go back). */
export async function rollbackAll(branches: Map<string, ParticipantBranch>): Promise<void> {
  await Promise.allSettled([...branches.values()].map((branch) => branch.rollback()));
}

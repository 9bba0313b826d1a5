export {
  type TransactionBranch,
  type TransactionOptions,
  type TransactionResult,
  TwoPhaseCoordinator,
  type TwoPhaseCoordinatorOptions,
  type TwoPhaseHooks,
  type TwoPhaseOptimizations,
  type TwoPhaseStep,
  type TwoPhaseStepInfo,
  type TwoPhaseTransaction,
} from './coordinator.js';
export type { Decision, DecisionEntry, DecisionLog, DecisionRecord } from './decision-log.js';
export {
  coordinatorPrefix,
  GID_SCHEME,
  MAX_GID_BYTES,
  type ParsedGid,
  parseGid,
} from './gid.js';
export type {
  BranchStatus,
  Participant,
  ParticipantBranch,
  ParticipantQueryResult,
  PreparedBranch,
  PreparedInfo,
} from './participant.js';
export type { HeuristicEvent, RecoveryReport } from './recovery.js';

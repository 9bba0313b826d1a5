// `causeway/testing`: record a history of reads and writes and check it against the session
// guarantees. Loads no database driver.
export { type CheckOptions, checkHistory, GUARANTEES } from './checker.js';
export type {
  CheckResult,
  Guarantee,
  HistoryOperation,
  ReadOperation,
  Violation,
  WriteOperation,
} from './history.js';
export {
  HistoryRecorder,
  type HistoryRecorderOptions,
  type RecordedHistory,
} from './recorder.js';

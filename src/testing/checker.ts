import { configError } from '../errors.js';
import { knownOptions } from '../options.js';
import { indexHistory } from './checker-index.js';
import { Checker } from './checker-rules.js';
import { type CheckResult, GUARANTEES, type Guarantee, type HistoryOperation } from './history.js';

export { CHECKER_TUNING } from './checker-rules.js';
export { GUARANTEES } from './history.js';

/**
 * The history checker: decides from a recorded history (see `history.ts`) whether the system
 * under test kept the session guarantees, and names the operations that prove each violation.
 *
 * Terms. Session order: the order of a session's operations in the history. A read R *sees* a
 * write W when W's version is known (> 0) and R.observed[W.key] >= W.version; the writes
 * *visible* to R for a key k are the writes to k with version <= R.observed[k]. A write is
 * *required* (may be demanded visible) only when it is acknowledged: a write whose client saw
 * an error may not have happened, although a read that sees it proves that it did, and then it
 * counts as seen like any other. Keys a read did not read impose nothing on it: every check
 * compares versions of keys present in the read's `observed`.
 *
 * The definitions (s is a session, R, R1, R2 reads, W, W1, W2 writes):
 *
 * - read-your-writes: for every read R of s and every acknowledged write W of s before R with
 *   W.key in R.observed: R.observed[W.key] >= W.version.
 * - monotonic-reads: for reads R1 before R2 of s and every key k both read:
 *   R2.observed[k] >= R1.observed[k].
 * - monotonic-writes: for W1 acknowledged before W2 in s: (a) if both write one key,
 *   W2.version > W1.version; (b) every read R (of any session) that sees W2 and reads W1.key
 *   sees W1. Case (b) with one key is case (a) and is reported only as (a).
 * - writes-follow-reads: for R1 before W in s: (a) if R1 read W.key, W.version >
 *   R1.observed[W.key] (a write is ordered after what its session read); (b) every read R that
 *   sees W has R.observed[k] >= R1.observed[k] for every key k read by both R1 and R, other
 *   than W.key (which (a) covers).
 * - consistent-prefix: every read R that sees W sees every acknowledged write D that W depends
 *   on, directly or through other writes' `dependsOn`, whose key R read (a reply is never
 *   visible without the comment it answers).
 *
 * Each guarantee is checked one step, on what reads observed: a violation whose only proof goes
 * through a key no read read (R sees W2 of session B, which was written after B read W1 of
 * session A, which A wrote after W0, and R reads W0's key but not W1's) is not reported.
 *
 * Reporting: at most one violation per operation checked (a read, or a write out of order with
 * its own session's past), guarantee and key (the key seen too old, or written); a violation's
 * operations are in history order, its `key` is that key and its `session` the session whose
 * guarantee broke: the reader's for read-your-writes, monotonic-reads and consistent-prefix, the
 * writer's for monotonic-writes and writes-follow-reads. Violations are listed by the operation
 * checked (history order), then guarantee (`GUARANTEES` order), then key (the read's order).
 *
 * Cost: no all-pairs pass over the history. Indexing is O(n log n); each read costs O(k² log n)
 * for its k keys to find the key pairs where some write it saw could require more than it saw
 * (bounded by what was acknowledged or read anywhere before); each (required key, seen key)
 * pair with such a read then costs one pass over the seen key's writes, and consistent prefix
 * one pass over the `dependsOn` graph per required key.
 *
 * Input. Malformed histories are `INVALID_INPUT`: an unknown `kind`, a missing or mistyped field,
 * a version or observed version that is not a non-negative safe integer, an acknowledged write
 * with version 0 (version 0 is the initial state; record an unacknowledged write whose version is
 * unknown with version 0, and it takes part in no check), a write id used twice, two writes
 * claiming one version of one key, a `dependsOn` naming an unknown id, the write itself or a
 * cycle, `endedAt < startedAt`. A read may observe a version that no recorded write made: the
 * history need not hold every write (set-up data, unknown outcomes).
 */

export interface CheckOptions {
  /** The guarantees to check (default: all of `GUARANTEES`); the others count 0. */
  readonly guarantees?: readonly Guarantee[];
}

/** Checks `operations` against the session guarantees (see the definitions above). */
export function checkHistory(
  operations: readonly HistoryOperation[],
  options: CheckOptions = {},
): CheckResult {
  const enabled = resolveGuarantees(options);
  const history = indexHistory(operations);
  const violations = new Checker(history, enabled).run();
  const counts = Object.fromEntries(GUARANTEES.map((g) => [g, 0])) as Record<Guarantee, number>;
  for (const violation of violations) counts[violation.guarantee] += 1;
  return { ok: violations.length === 0, operations: history.ops.length, violations, counts };
}

function resolveGuarantees(options: CheckOptions): ReadonlySet<Guarantee> {
  const { guarantees = GUARANTEES } = knownOptions(options, 'checkHistory', ['guarantees']);
  if (!Array.isArray(guarantees)) {
    throw configError('checkHistory: guarantees must be an array of guarantee names', {
      known: GUARANTEES,
    });
  }
  for (const guarantee of guarantees) {
    if (!GUARANTEES.includes(guarantee)) {
      const name = typeof guarantee === 'string' ? JSON.stringify(guarantee) : typeof guarantee;
      throw configError(`checkHistory: unknown guarantee ${name}`, {
        known: GUARANTEES,
      });
    }
  }
  return new Set(guarantees);
}

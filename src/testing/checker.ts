import { configError, invalidInput } from '../errors.js';
import { knownOptions } from '../options.js';
import type {
  CheckResult,
  Guarantee,
  HistoryOperation,
  ReadOperation,
  Violation,
  WriteOperation,
} from './history.js';

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

/**
 * Internal (not exported from `causeway/testing`): a sweep over every write replaces per-write
 * binary searches when the writes to examine exceed 1/`sweepFactor` of all writes. Tests set it
 * to 0 (never sweep) or Infinity (always) to check both paths against the definitions.
 */
export const CHECKER_TUNING = { sweepFactor: 8 };

/** Every guarantee the checker knows, in the order `counts` lists them. */
export const GUARANTEES: readonly Guarantee[] = [
  'read-your-writes',
  'monotonic-reads',
  'monotonic-writes',
  'writes-follow-reads',
  'consistent-prefix',
];

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

// ---------------------------------------------------------------------------------------------
// Validation

const KIND_FIELDS = {
  write: ['session', 'key', 'id', 'version', 'node', 'startedAt', 'endedAt', 'acknowledged'],
  read: ['session', 'observed', 'node', 'startedAt', 'endedAt'],
} as const;

function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks the shape of one operation (not its relation to others) and throws `INVALID_INPUT`
 * naming its position. Shared with `HistoryRecorder`, which rejects a bad operation when it is
 * recorded rather than when the history is checked.
 */
export function assertOperation(op: unknown, index: number): asserts op is HistoryOperation {
  const fail = (problem: string): never => {
    throw invalidInput(`History operation ${index}: ${problem}`, { index });
  };
  if (typeof op !== 'object' || op === null) fail('not an object');
  const record = op as Record<string, unknown>;
  const kind = record['kind'];
  if (kind !== 'write' && kind !== 'read') fail('kind must be "write" or "read"');
  for (const field of KIND_FIELDS[kind as 'write' | 'read']) {
    if (record[field] === undefined) fail(`missing ${field}`);
  }
  for (const field of ['session', 'node'] as const) {
    if (typeof record[field] !== 'string') fail(`${field} must be a string`);
  }
  const { startedAt, endedAt } = record;
  if (typeof startedAt !== 'number' || !Number.isFinite(startedAt)) {
    fail('startedAt must be a finite number');
  }
  if (typeof endedAt !== 'number' || !Number.isFinite(endedAt)) {
    fail('endedAt must be a finite number');
  }
  if ((endedAt as number) < (startedAt as number)) fail('endedAt is before startedAt');
  if (kind === 'write') {
    if (typeof record['key'] !== 'string') fail('key must be a string');
    if (typeof record['id'] !== 'string' || record['id'] === '') {
      fail('id must be a non-empty string');
    }
    if (typeof record['acknowledged'] !== 'boolean') fail('acknowledged must be a boolean');
    const version = record['version'];
    if (!isVersion(version)) fail('version must be a non-negative safe integer');
    if (version === 0 && record['acknowledged'] === true) {
      fail('an acknowledged write must have a version of at least 1 (0 is the initial state)');
    }
    const dependsOn = record['dependsOn'];
    // Array.from visits holes (as undefined) where every() skips them: a sparse array is refused.
    if (
      dependsOn !== undefined &&
      (!Array.isArray(dependsOn) || !Array.from(dependsOn).every((id) => typeof id === 'string'))
    ) {
      fail('dependsOn must be an array of write ids');
    }
  } else {
    const observed = record['observed'];
    if (typeof observed !== 'object' || observed === null || Array.isArray(observed)) {
      fail('observed must be an object of key versions');
    }
    for (const version of Object.values(observed as object)) {
      if (!isVersion(version)) fail('an observed version must be a non-negative safe integer');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Indexing

/** A running maximum over positions appended in increasing order, queried by position. */
class RunningMax {
  readonly #positions: number[] = [];
  readonly #max: number[] = [];
  /** History index of the operation holding the maximum at each step. */
  readonly #holder: number[] = [];

  add(position: number, value: number): void {
    const last = this.#max.length - 1;
    const keep = last >= 0 && (this.#max[last] as number) >= value;
    this.#positions.push(position);
    this.#max.push(keep ? (this.#max[last] as number) : value);
    this.#holder.push(keep ? (this.#holder[last] as number) : position);
  }

  /** How many entries lie strictly before `position`. */
  countBefore(position: number): number {
    return lowerBound(this.#positions, position);
  }

  /** The maximum of the first `count` entries (0 when `count` is 0). */
  maxOf(count: number): number {
    return count === 0 ? 0 : (this.#max[count - 1] as number);
  }

  /** The history index of the operation holding `maxOf(count)` (`count` > 0). */
  holderOf(count: number): number {
    return this.#holder[count - 1] as number;
  }
}

/** The number of entries of ascending `sorted` below `value`. */
function lowerBound(sorted: readonly number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] as number) < value) low = mid + 1;
    else high = mid;
  }
  return low;
}

interface KeyWrites {
  /** History indices of the writes to the key with a known version, by ascending version. */
  readonly writes: number[];
  readonly versions: number[];
  /** The highest history index among the first j + 1 of `writes`. */
  readonly latest: number[];
}

/** key -> session -> running maximum in session order. */
type PerKeySession = Map<string, Map<string, RunningMax>>;

interface IndexedHistory {
  readonly ops: readonly HistoryOperation[];
  readonly dependencies: DependencyGraph;
  readonly byKey: ReadonlyMap<string, KeyWrites>;
  /** Acknowledged write versions per key and session. */
  readonly ackedWrites: PerKeySession;
  /** Non-zero observed versions per key and session. */
  readonly readVersions: PerKeySession;
  /**
   * Per key, across sessions and in history order: acknowledged write versions and observed
   * versions. Upper bounds that let a read skip the cross-key work when no write it saw can
   * require more of a key than it saw.
   */
  readonly anyAckedWrite: ReadonlyMap<string, RunningMax>;
  readonly anyRead: ReadonlyMap<string, RunningMax>;
  /** The most writes with a known version any one key has. */
  readonly maxWritesPerKey: number;
  /** Per operation, its session as a small integer (`sessionCount` of them). */
  readonly sessionOf: Int32Array;
  readonly sessionCount: number;
  /** History indices of the writes with a known version, ascending; `ordinalOf` inverts it. */
  readonly knownWrites: Int32Array;
  readonly ordinalOf: Int32Array;
  /** Per key, ascending history indices of its acknowledged writes and its non-zero reads. */
  readonly ackedIndices: ReadonlyMap<string, number[]>;
  readonly readIndices: ReadonlyMap<string, number[]>;
}

function runningMax(table: PerKeySession, key: string, session: string): RunningMax {
  let perSession = table.get(key);
  if (!perSession) {
    perSession = new Map();
    table.set(key, perSession);
  }
  let running = perSession.get(session);
  if (!running) {
    running = new RunningMax();
    perSession.set(session, running);
  }
  return running;
}

function describe(ops: readonly HistoryOperation[], index: number): string {
  const op = ops[index] as HistoryOperation;
  return op.kind === 'write' ? `write ${op.id}` : `read #${index}`;
}

function indexHistory(operations: readonly HistoryOperation[]): IndexedHistory {
  if (!Array.isArray(operations)) throw invalidInput('A history must be an array of operations');
  const ops = operations;
  const writeIndexById = new Map<string, number>();
  const unsortedByKey = new Map<string, number[]>();
  const ackedWrites: PerKeySession = new Map();
  const readVersions: PerKeySession = new Map();
  const anyAckedWrite = new Map<string, RunningMax>();
  const anyRead = new Map<string, RunningMax>();
  const sessionOf = new Int32Array(ops.length);
  const sessionIds = new Map<string, number>();
  const knownWrites: number[] = [];
  const ordinalOf = new Int32Array(ops.length).fill(-1);
  const ackedIndices = new Map<string, number[]>();
  const readIndices = new Map<string, number[]>();
  const append = (table: Map<string, number[]>, key: string, i: number) => {
    const list = table.get(key);
    if (list) list.push(i);
    else table.set(key, [i]);
  };
  const addTo = (table: Map<string, RunningMax>, key: string, i: number, version: number) => {
    let running = table.get(key);
    if (!running) {
      running = new RunningMax();
      table.set(key, running);
    }
    running.add(i, version);
  };
  for (let i = 0; i < ops.length; i++) {
    const op: unknown = ops[i];
    assertOperation(op, i);
    let session = sessionIds.get(op.session);
    if (session === undefined) {
      session = sessionIds.size;
      sessionIds.set(op.session, session);
    }
    sessionOf[i] = session;
    if (op.kind === 'write') {
      if (writeIndexById.has(op.id)) {
        throw invalidInput(`History operation ${i}: write id ${JSON.stringify(op.id)} used twice`, {
          index: i,
          firstIndex: writeIndexById.get(op.id),
        });
      }
      writeIndexById.set(op.id, i);
      if (op.version > 0) {
        append(unsortedByKey, op.key, i);
        ordinalOf[i] = knownWrites.length;
        knownWrites.push(i);
      }
      if (op.acknowledged) {
        runningMax(ackedWrites, op.key, op.session).add(i, op.version);
        addTo(anyAckedWrite, op.key, i, op.version);
        append(ackedIndices, op.key, i);
      }
    } else {
      for (const [key, version] of Object.entries(op.observed)) {
        if (version === 0) continue;
        runningMax(readVersions, key, op.session).add(i, version);
        addTo(anyRead, key, i, version);
        append(readIndices, key, i);
      }
    }
  }

  const byKey = new Map<string, KeyWrites>();
  let maxWritesPerKey = 0;
  for (const [key, writes] of unsortedByKey) {
    const versionOf = (i: number) => (ops[i] as WriteOperation).version;
    writes.sort((a, b) => versionOf(a) - versionOf(b));
    const versions = writes.map(versionOf);
    for (let j = 1; j < versions.length; j++) {
      if (versions[j] === versions[j - 1]) {
        const [a, b] = [writes[j - 1] as number, writes[j] as number].sort((x, y) => x - y);
        throw invalidInput(
          `${describe(ops, a as number)} and ${describe(ops, b as number)} both claim version ${versions[j]} of key ${JSON.stringify(key)}`,
          { index: b },
        );
      }
    }
    let latest = -1;
    byKey.set(key, { writes, versions, latest: writes.map((i) => (latest = Math.max(latest, i))) });
    maxWritesPerKey = Math.max(maxWritesPerKey, writes.length);
  }

  const direct = new Map<number, readonly number[]>();
  for (const [id, i] of writeIndexById) {
    const dependsOn = (ops[i] as WriteOperation).dependsOn;
    if (!dependsOn || dependsOn.length === 0) continue;
    const targets = dependsOn.map((dependency) => {
      const target = writeIndexById.get(dependency);
      if (target === undefined) {
        throw invalidInput(
          `History operation ${i}: write ${id} depends on unknown write ${JSON.stringify(dependency)}`,
          { index: i },
        );
      }
      if (target === i) {
        throw invalidInput(`History operation ${i}: write ${id} depends on itself`, { index: i });
      }
      return target;
    });
    direct.set(i, targets);
  }
  const dependencies = new DependencyGraph(ops, direct);
  return {
    ops,
    dependencies,
    byKey,
    ackedWrites,
    readVersions,
    anyAckedWrite,
    anyRead,
    maxWritesPerKey,
    sessionOf,
    sessionCount: sessionIds.size,
    knownWrites: Int32Array.from(knownWrites),
    ordinalOf,
    ackedIndices,
    readIndices,
  };
}

/**
 * The `dependsOn` graph over the writes that take part in it, numbered in topological order
 * (every write after its dependencies) and stored as flat arrays, so that the consistent-prefix
 * requirement for one key is a single sweep. Construction rejects a cycle with `INVALID_INPUT`.
 */
class DependencyGraph {
  readonly #ops: readonly HistoryOperation[];
  /** Topological number -> history index. */
  readonly #indexOf: number[] = [];
  /** History index -> topological number (absent when the write takes no part). */
  readonly #numberOf = new Map<number, number>();
  /** Direct dependencies of number n: `#targets[#start[n] .. #start[n + 1])`. */
  readonly #start: Int32Array;
  readonly #targets: Int32Array;
  /** Per key, the highest version of an acknowledged write some write depends on. */
  readonly maxRequired = new Map<string, number>();
  /** Per number, for `#sweptKey`: the required write (history index, -1: none) and next hop. */
  readonly #source: Int32Array;
  readonly #next: Int32Array;
  #sweptKey: string | undefined;
  /** Per number: the write's key (interned) when acknowledged, else -1; and its version. */
  readonly #ackedKey: Int32Array;
  readonly #version: Float64Array;
  readonly #keyIds = new Map<string, number>();

  constructor(ops: readonly HistoryOperation[], direct: ReadonlyMap<number, readonly number[]>) {
    this.#ops = ops;
    this.#number(direct);
    const size = this.#indexOf.length;
    this.#start = new Int32Array(size + 1);
    const targets: number[] = [];
    for (let n = 0; n < size; n++) {
      for (const target of direct.get(this.#indexOf[n] as number) ?? []) {
        targets.push(this.#numberOf.get(target) as number);
        const dependency = ops[target] as WriteOperation;
        if (
          dependency.acknowledged &&
          (this.maxRequired.get(dependency.key) ?? 0) < dependency.version
        ) {
          this.maxRequired.set(dependency.key, dependency.version);
        }
      }
      this.#start[n + 1] = targets.length;
    }
    this.#targets = Int32Array.from(targets);
    this.#source = new Int32Array(size);
    this.#next = new Int32Array(size);
    this.#ackedKey = new Int32Array(size);
    this.#version = new Float64Array(size);
    for (let n = 0; n < size; n++) {
      const write = ops[this.#indexOf[n] as number] as WriteOperation;
      this.#version[n] = write.version;
      if (!write.acknowledged) {
        this.#ackedKey[n] = -1;
        continue;
      }
      let id = this.#keyIds.get(write.key);
      if (id === undefined) {
        id = this.#keyIds.size;
        this.#keyIds.set(write.key, id);
      }
      this.#ackedKey[n] = id;
    }
  }

  /** Numbers writes in post-order of an iterative depth-first walk, failing on a cycle. */
  #number(direct: ReadonlyMap<number, readonly number[]>): void {
    const active = new Set<number>();
    for (const root of direct.keys()) {
      if (this.#numberOf.has(root)) continue;
      const stack: Array<{ node: number; next: number }> = [{ node: root, next: 0 }];
      active.add(root);
      while (stack.length > 0) {
        const frame = stack[stack.length - 1] as { node: number; next: number };
        const children = direct.get(frame.node) ?? [];
        if (frame.next === children.length) {
          active.delete(frame.node);
          this.#numberOf.set(frame.node, this.#indexOf.length);
          this.#indexOf.push(frame.node);
          stack.pop();
          continue;
        }
        const child = children[frame.next++] as number;
        if (active.has(child)) {
          throw invalidInput(`${describe(this.#ops, child)} is part of a dependsOn cycle`, {
            index: child,
          });
        }
        if (!this.#numberOf.has(child)) {
          active.add(child);
          stack.push({ node: child, next: 0 });
        }
      }
    }
  }

  /**
   * The highest-version acknowledged write to `requiredKey` among the transitive dependencies
   * of write `w` (history index; -1 when none).
   */
  requiredSource(w: number, requiredKey: string): number {
    const n = this.#numberOf.get(w);
    if (n === undefined) return -1;
    if (this.#sweptKey !== requiredKey) this.#sweep(requiredKey);
    return this.#source[n] as number;
  }

  /** The direct dependency of `w` on the way to `requiredSource(w, requiredKey)`. */
  requiredNext(w: number, requiredKey: string): number {
    const n = this.#numberOf.get(w);
    if (n === undefined) return -1;
    if (this.#sweptKey !== requiredKey) this.#sweep(requiredKey);
    return this.#next[n] as number;
  }

  #sweep(requiredKey: string): void {
    const key = this.#keyIds.get(requiredKey) ?? -2;
    // Per number: the version of its requirement, so a dependent compares numbers only.
    const required = new Float64Array(this.#indexOf.length);
    for (let n = 0; n < this.#indexOf.length; n++) {
      let source = -1;
      let version = 0;
      let next = -1;
      for (let e = this.#start[n] as number; e < (this.#start[n + 1] as number); e++) {
        const d = this.#targets[e] as number;
        if (this.#ackedKey[d] === key && (this.#version[d] as number) > version) {
          version = this.#version[d] as number;
          source = this.#indexOf[d] as number;
          next = source;
        }
        if ((required[d] as number) > version) {
          version = required[d] as number;
          source = this.#source[d] as number;
          next = this.#indexOf[d] as number;
        }
      }
      required[n] = version;
      this.#source[n] = source;
      this.#next[n] = next;
    }
    this.#sweptKey = requiredKey;
  }
}

// ---------------------------------------------------------------------------------------------
// Checking

type CrossKeyGuarantee = 'monotonic-writes' | 'writes-follow-reads' | 'consistent-prefix';
const CROSS_KEY: readonly CrossKeyGuarantee[] = [
  'monotonic-writes',
  'writes-follow-reads',
  'consistent-prefix',
];

/** A violation with where it sorts: by the operation checked, then guarantee, then key. */
interface Found {
  readonly index: number;
  readonly rank: number;
  readonly keyRank: number;
  readonly violation: Violation;
}

/**
 * Cross-key questions, answered offline grouped by key so that each group's working data is
 * built once and dropped: required key -> seen key -> flat [read index, rank of the required
 * key in the read, rank of the seen key, how many writes of the seen key the read sees, bit
 * mask of the guarantees (bit = index in CROSS_KEY) that could fail, the version of the
 * required key the read saw].
 */
type Queries = Map<string, Map<string, number[]>>;
const QUERY_WIDTH = 6;

class Checker {
  readonly #history: IndexedHistory;
  readonly #enabled: ReadonlySet<Guarantee>;
  readonly #found: Found[] = [];
  /** Scratch for one seen key's requirement maxima in version order. */
  readonly #prefixMax: Float64Array;
  readonly #prefixHolder: Int32Array;
  /** Scratch for a sweep: per write ordinal, and per session while sweeping. */
  readonly #sweepMax: Float64Array;
  readonly #sessionMax: Float64Array;

  constructor(history: IndexedHistory, enabled: ReadonlySet<Guarantee>) {
    this.#history = history;
    this.#enabled = enabled;
    this.#prefixMax = new Float64Array(history.maxWritesPerKey);
    this.#prefixHolder = new Int32Array(history.maxWritesPerKey);
    this.#sweepMax = new Float64Array(history.knownWrites.length);
    this.#sessionMax = new Float64Array(history.sessionCount);
  }

  run(): Violation[] {
    const queries = this.#checkSessions();
    for (const [requiredKey, bySeenKey] of queries) this.#checkCrossKey(requiredKey, bySeenKey);
    this.#found.sort((a, b) => a.index - b.index || a.rank - b.rank || a.keyRank - b.keyRank);
    return this.#found.map((found) => found.violation);
  }

  #report(
    index: number,
    keyRank: number,
    guarantee: Guarantee,
    session: string,
    key: string,
    message: string,
    proof: readonly number[],
  ): void {
    const indices = [...new Set(proof)].sort((a, b) => a - b);
    this.#found.push({
      index,
      rank: GUARANTEES.indexOf(guarantee),
      keyRank,
      violation: {
        guarantee,
        session,
        key,
        message,
        operations: indices.map((i) => this.#history.ops[i] as HistoryOperation),
      },
    });
  }

  #version(writeIndex: number): number {
    return (this.#history.ops[writeIndex] as WriteOperation).version;
  }

  #observed(readIndex: number, key: string): number {
    return (this.#history.ops[readIndex] as ReadOperation).observed[key] as number;
  }

  /**
   * One pass in history order: the checks against a session's own past, and the cross-key
   * questions each read raises.
   */
  #checkSessions(): Queries {
    const { ops, byKey, anyAckedWrite, anyRead, dependencies } = this.#history;
    const bound = (table: ReadonlyMap<string, RunningMax>, key: string, before: number) => {
      const running = table.get(key);
      return running ? running.maxOf(running.countBefore(before)) : 0;
    };
    const [mw, wfr, cp] = CROSS_KEY.map((g) => this.#enabled.has(g));
    const crossKey = CROSS_KEY.some((g) => this.#enabled.has(g));
    const queries: Queries = new Map();
    // Per session and key, so far: the acknowledged write with the highest version and the
    // read that observed the highest version.
    const ownWrites = new Map<string, Map<string, number>>();
    const ownReads = new Map<string, Map<string, number>>();
    const stateOf = (map: Map<string, Map<string, number>>, session: string) => {
      let state = map.get(session);
      if (!state) {
        state = new Map();
        map.set(session, state);
      }
      return state;
    };
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as HistoryOperation;
      const writes = stateOf(ownWrites, op.session);
      const reads = stateOf(ownReads, op.session);
      if (op.kind === 'write') {
        this.#checkWrite(i, op, writes, reads);
        const newest = writes.get(op.key);
        if (op.acknowledged && (newest === undefined || this.#version(newest) < op.version)) {
          writes.set(op.key, i);
        }
        continue;
      }
      const observed = Object.entries(op.observed);
      this.#checkRead(i, op, observed, writes, reads);
      for (const [key, version] of observed) {
        const best = reads.get(key);
        if (best === undefined || this.#observed(best, key) < version) reads.set(key, i);
      }
      if (!crossKey) continue;
      // The keys this read saw some write of, and the latest of those writes in history order.
      const seen: { key: string; rank: number; count: number }[] = [];
      let latestSeen = -1;
      observed.forEach(([key, version], rank) => {
        const keyWrites = byKey.get(key);
        const count = keyWrites ? lowerBound(keyWrites.versions, version + 1) : 0;
        if (count === 0) return;
        seen.push({ key, rank, count });
        latestSeen = Math.max(latestSeen, keyWrites!.latest[count - 1] as number);
      });
      if (seen.length === 0) continue;
      observed.forEach(([requiredKey, requiredSeen], requiredRank) => {
        // What any write the read saw can require is bounded by what was acknowledged or read
        // anywhere before the latest of them, and by the versions of dependencies.
        const mwBound = mw && bound(anyAckedWrite, requiredKey, latestSeen) > requiredSeen;
        const wfrBound = wfr && bound(anyRead, requiredKey, latestSeen) > requiredSeen;
        const cpBound = cp && (dependencies.maxRequired.get(requiredKey) ?? 0) > requiredSeen;
        if (!mwBound && !wfrBound && !cpBound) return;
        for (const { key: seenKey, rank: seenRank, count } of seen) {
          const sameKey = seenKey === requiredKey;
          const mask =
            (mwBound && !sameKey ? 1 : 0) | (wfrBound && !sameKey ? 2 : 0) | (cpBound ? 4 : 0);
          if (mask === 0) continue;
          let bySeenKey = queries.get(requiredKey);
          if (!bySeenKey) {
            bySeenKey = new Map();
            queries.set(requiredKey, bySeenKey);
          }
          let list = bySeenKey.get(seenKey);
          if (!list) {
            list = [];
            bySeenKey.set(seenKey, list);
          }
          list.push(i, requiredRank, seenRank, count, mask, requiredSeen);
        }
      });
    }
    return queries;
  }

  /** Monotonic writes (a) and writes-follow-reads (a): a write against its own session. */
  #checkWrite(
    i: number,
    write: WriteOperation,
    writes: ReadonlyMap<string, number>,
    reads: ReadonlyMap<string, number>,
  ): void {
    if (write.version === 0) return;
    const { ops } = this.#history;
    const key = JSON.stringify(write.key);
    const earlier = writes.get(write.key);
    if (
      this.#enabled.has('monotonic-writes') &&
      earlier !== undefined &&
      this.#version(earlier) >= write.version
    ) {
      this.#report(
        i,
        0,
        'monotonic-writes',
        write.session,
        write.key,
        `session ${write.session}: write ${write.id} made version ${write.version} of ${key} after its acknowledged ${describe(ops, earlier)} made version ${this.#version(earlier)}`,
        [earlier, i],
      );
    }
    const read = reads.get(write.key);
    if (
      this.#enabled.has('writes-follow-reads') &&
      read !== undefined &&
      this.#observed(read, write.key) >= write.version
    ) {
      this.#report(
        i,
        0,
        'writes-follow-reads',
        write.session,
        write.key,
        `session ${write.session}: write ${write.id} made version ${write.version} of ${key} after ${describe(ops, read)} saw version ${this.#observed(read, write.key)}`,
        [read, i],
      );
    }
  }

  /** Read-your-writes and monotonic reads: a read against its own session's past. */
  #checkRead(
    i: number,
    read: ReadOperation,
    observed: ReadonlyArray<[string, number]>,
    writes: ReadonlyMap<string, number>,
    reads: ReadonlyMap<string, number>,
  ): void {
    const { ops } = this.#history;
    observed.forEach(([key, version], keyRank) => {
      const write = writes.get(key);
      if (
        this.#enabled.has('read-your-writes') &&
        write !== undefined &&
        version < this.#version(write)
      ) {
        this.#report(
          i,
          keyRank,
          'read-your-writes',
          read.session,
          key,
          `session ${read.session}: read #${i} saw ${JSON.stringify(key)} at version ${version}, older than its own acknowledged ${describe(ops, write)} (version ${this.#version(write)})`,
          [write, i],
        );
      }
      const earlier = reads.get(key);
      if (
        this.#enabled.has('monotonic-reads') &&
        earlier !== undefined &&
        version < this.#observed(earlier, key)
      ) {
        this.#report(
          i,
          keyRank,
          'monotonic-reads',
          read.session,
          key,
          `session ${read.session}: read #${i} saw ${JSON.stringify(key)} at version ${version} after read #${earlier} saw version ${this.#observed(earlier, key)}`,
          [earlier, i],
        );
      }
    });
  }

  /**
   * Monotonic writes (b), writes-follow-reads (b) and consistent prefix for one required key:
   * does a write that a read saw (of any key it read) require a newer version of this key than
   * the read saw? For each seen key, the requirement's running maximum over its writes in
   * version order answers every read at once; the first seen key (in the read's order) that
   * proves a violation is reported.
   */
  #checkCrossKey(requiredKey: string, bySeenKey: ReadonlyMap<string, number[]>): void {
    const { ops, byKey, knownWrites } = this.#history;
    // Per seen key, the guarantees any of its questions asks about (the union of the masks).
    const asked = new Map<string, number>();
    for (const [seenKey, queries] of bySeenKey) {
      let union = 0;
      for (let q = 4; q < queries.length; q += QUERY_WIDTH) union |= queries[q] as number;
      asked.set(seenKey, union);
    }
    const asks = (seenKey: string, bit: number) =>
      (((asked.get(seenKey) as number) >> bit) & 1) === 1;
    CROSS_KEY.forEach((guarantee, bit) => {
      if (!this.#enabled.has(guarantee)) return;
      // When the seen keys to fill cover much of the history, one sweep of every write beats a
      // binary search per write of each seen key.
      let toFill = 0;
      for (const seenKey of bySeenKey.keys()) {
        if (asks(seenKey, bit)) toFill += (byKey.get(seenKey) as KeyWrites).writes.length;
      }
      const swept =
        guarantee !== 'consistent-prefix' &&
        toFill * CHECKER_TUNING.sweepFactor > knownWrites.length
          ? this.#sweep(guarantee, requiredKey)
          : false;
      /** read index -> [rank of the seen key, the write that proves it] */
      const proven = new Map<number, { seenRank: number; requiredRank: number; write: number }>();
      for (const [seenKey, queries] of bySeenKey) {
        if (!asks(seenKey, bit)) continue;
        this.#fillPrefix(guarantee, byKey.get(seenKey) as KeyWrites, requiredKey, swept);
        for (let q = 0; q < queries.length; q += QUERY_WIDTH) {
          if ((((queries[q + 4] as number) >> bit) & 1) === 0) continue;
          const read = queries[q] as number;
          const seenCount = queries[q + 3] as number;
          if ((this.#prefixMax[seenCount - 1] as number) <= (queries[q + 5] as number)) continue;
          const seenRank = queries[q + 2] as number;
          const earlier = proven.get(read);
          if (earlier && earlier.seenRank < seenRank) continue;
          proven.set(read, {
            seenRank,
            requiredRank: queries[q + 1] as number,
            write: this.#prefixHolder[seenCount - 1] as number,
          });
        }
      }
      for (const [read, { requiredRank, write }] of proven) {
        this.#reportCrossKey(guarantee, read, ops[read] as ReadOperation, requiredKey, {
          requiredRank,
          write,
        });
      }
    });
  }

  /**
   * For monotonic writes or writes-follow-reads and one required key: what every write with a
   * known version requires, in one pass over the history in order (per session, the running
   * maximum of its acknowledged writes of, or reads of, the key). Fills `#sweepMax` by write
   * ordinal; returns true.
   */
  #sweep(guarantee: 'monotonic-writes' | 'writes-follow-reads', requiredKey: string): true {
    const { knownWrites, sessionOf, ackedIndices, readIndices } = this.#history;
    const writes = guarantee === 'monotonic-writes';
    const events = (writes ? ackedIndices : readIndices).get(requiredKey) ?? [];
    this.#sessionMax.fill(0);
    let e = 0;
    for (let j = 0; j < knownWrites.length; j++) {
      const w = knownWrites[j] as number;
      for (; e < events.length && (events[e] as number) < w; e++) {
        const event = events[e] as number;
        const value = writes ? this.#version(event) : this.#observed(event, requiredKey);
        const session = sessionOf[event] as number;
        if (value > (this.#sessionMax[session] as number)) this.#sessionMax[session] = value;
      }
      const session = sessionOf[w] as number;
      this.#sweepMax[j] = this.#sessionMax[session] as number;
    }
    return true;
  }

  /**
   * Fills the scratch arrays with the requirement maxima over `keyWrites` in version order,
   * from `#sweepMax` when `swept` for this guarantee and key.
   */
  #fillPrefix(
    guarantee: CrossKeyGuarantee,
    keyWrites: KeyWrites,
    requiredKey: string,
    swept: boolean,
  ): void {
    const { ops, ackedWrites, readVersions, dependencies, ordinalOf } = this.#history;
    const perSession = (guarantee === 'monotonic-writes' ? ackedWrites : readVersions).get(
      requiredKey,
    );
    let best = 0;
    let bestHolder = -1;
    for (let j = 0; j < keyWrites.writes.length; j++) {
      const w = keyWrites.writes[j] as number;
      let value = 0;
      if (swept) {
        value = this.#sweepMax[ordinalOf[w] as number] as number;
      } else if (guarantee === 'consistent-prefix') {
        const source = dependencies.requiredSource(w, requiredKey);
        if (source >= 0) value = this.#version(source);
      } else {
        const running = perSession?.get((ops[w] as WriteOperation).session);
        if (running) value = running.maxOf(running.countBefore(w));
      }
      if (value > best) {
        best = value;
        bestHolder = w;
      }
      this.#prefixMax[j] = best;
      this.#prefixHolder[j] = bestHolder;
    }
  }

  #reportCrossKey(
    guarantee: CrossKeyGuarantee,
    i: number,
    read: ReadOperation,
    requiredKey: string,
    { requiredRank, write: writeIndex }: { requiredRank: number; write: number },
  ): void {
    const { ops, ackedWrites, readVersions, dependencies } = this.#history;
    const write = ops[writeIndex] as WriteOperation;
    const saw = `read #${i} (session ${read.session}) saw write ${write.id} (${JSON.stringify(write.key)} version ${write.version})`;
    const stale = `the read saw ${JSON.stringify(requiredKey)} at version ${read.observed[requiredKey]}`;
    if (guarantee === 'consistent-prefix') {
      const source = dependencies.requiredSource(writeIndex, requiredKey);
      const via: number[] = [];
      for (
        let hop = dependencies.requiredNext(writeIndex, requiredKey);
        hop !== source;
        hop = dependencies.requiredNext(hop, requiredKey)
      ) {
        via.push(hop);
      }
      const chain = via.length > 0 ? ' (through dependsOn)' : '';
      this.#report(
        i,
        requiredRank,
        guarantee,
        read.session,
        requiredKey,
        `${saw} but not ${describe(ops, source)} (version ${this.#version(source)}) it depends on${chain}; ${stale}`,
        [source, ...via, writeIndex, i],
      );
      return;
    }
    const table = guarantee === 'monotonic-writes' ? ackedWrites : readVersions;
    const running = table.get(requiredKey)?.get(write.session) as RunningMax;
    const count = running.countBefore(writeIndex);
    const source = running.holderOf(count);
    const required = running.maxOf(count);
    const what =
      guarantee === 'monotonic-writes'
        ? `the earlier acknowledged ${describe(ops, source)} of session ${write.session} (version ${required})`
        : `what session ${write.session} had read before it: ${describe(ops, source)} saw version ${required} of ${JSON.stringify(requiredKey)}`;
    this.#report(
      i,
      requiredRank,
      guarantee,
      write.session,
      requiredKey,
      `${saw} but not ${what}; ${stale}`,
      [source, writeIndex, i],
    );
  }
}

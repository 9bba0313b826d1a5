import { invalidInput } from '../errors.js';
import { assertOperation } from './checker-input.js';
import type { HistoryOperation, WriteOperation } from './history.js';

// The checker's indexes over a validated history: per key and per session running maxima, the
// writes of each key by version, and the dependency graph of `dependsOn`.

/** A running maximum over positions appended in increasing order, queried by position. */
export class RunningMax {
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
export function lowerBound(sorted: readonly number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] as number) < value) low = mid + 1;
    else high = mid;
  }
  return low;
}

export interface KeyWrites {
  /** History indices of the writes to the key with a known version, by ascending version. */
  readonly writes: number[];
  readonly versions: number[];
  /** The highest history index among the first j + 1 of `writes`. */
  readonly latest: number[];
}

/** key -> session -> running maximum in session order. */
type PerKeySession = Map<string, Map<string, RunningMax>>;

export interface IndexedHistory {
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

export function describe(ops: readonly HistoryOperation[], index: number): string {
  const op = ops[index] as HistoryOperation;
  return op.kind === 'write' ? `write ${op.id}` : `read #${index}`;
}

export function indexHistory(operations: readonly HistoryOperation[]): IndexedHistory {
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

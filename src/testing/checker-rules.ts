import {
  describe,
  type IndexedHistory,
  type KeyWrites,
  lowerBound,
  type RunningMax,
} from './checker-index.js';
import {
  CROSS_KEY,
  type CrossKeyGuarantee,
  type Found,
  QUERY_WIDTH,
  type Queries,
} from './checker-queries.js';
import {
  GUARANTEES,
  type Guarantee,
  type HistoryOperation,
  type ReadOperation,
  type Violation,
  type WriteOperation,
} from './history.js';

// The checks of each guarantee over an indexed history (definitions in checker.ts).

/**
 * Internal (not exported from `causeway/testing`): a sweep over every write replaces per-write
 * binary searches when the writes to examine exceed 1/`sweepFactor` of all writes. Tests set it
 * to 0 (never sweep) or Infinity (always) to check both paths against the definitions.
 */
export const CHECKER_TUNING = { sweepFactor: 8 };

export class Checker {
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

/**
 * The fencing workload's checks (fencing.ts gathers what they read): each compares what the
 * holders saw (grants, acknowledged and rejected writes) with a storage's own log of accepted
 * writes, and adds what it finds to a `FencingTally`.
 */
import type { FencingBackend } from './fencing-child.js';

/** Two events on different processes this close together are not ordered by their times. */
export const CLOCK_MARGIN_MS = 10;

export interface Grant {
  readonly holder: string;
  readonly token: bigint;
  readonly startedAt: number;
  readonly grantedAt: number;
}

export interface WriteRecord {
  readonly id: string;
  readonly backend: FencingBackend;
  readonly holder: string;
  readonly token: bigint;
  readonly startedAt: number;
  result: 'pending' | 'ok' | 'stale' | 'error';
  endedAt?: number;
  seq?: number;
  epoch?: string;
  /** Written by a holder after it was paused with this write's token. */
  afterPause?: boolean;
}

export interface LoggedWrite {
  readonly seq: number;
  readonly token: bigint;
  readonly id: string;
}

/** What the checks found, summed over backends. */
export interface FencingTally {
  readonly failures: string[];
  readonly notes: string[];
  lostWrites: number;
  violations: number;
  staleWritesAccepted: number;
}

/** The largest of `tokens`, 0 for none. */
export function newestToken(tokens: readonly bigint[]): bigint {
  let newest = 0n;
  for (const token of tokens) if (token > newest) newest = token;
  return newest;
}

/** Real-time order of grants: one that began after another was granted has a larger token. */
export function checkGrants(
  backend: FencingBackend,
  grants: readonly Grant[],
  tally: FencingTally,
): void {
  const byGranted = [...grants].sort((a, b) => a.grantedAt - b.grantedAt);
  const byStarted = [...grants].sort((a, b) => a.startedAt - b.startedAt);
  let next = 0;
  let newest: Grant | undefined;
  for (const grant of byStarted) {
    while (
      next < byGranted.length &&
      byGranted[next]!.grantedAt + CLOCK_MARGIN_MS < grant.startedAt
    ) {
      const candidate = byGranted[next++]!;
      if (newest === undefined || candidate.token > newest.token) newest = candidate;
    }
    if (newest !== undefined && grant.token <= newest.token) {
      tally.violations++;
      tally.failures.push(
        `${backend} lease token went backwards: ${grant.holder} got ${grant.token} after ` +
          `${newest.holder} had ${newest.token}`,
      );
    }
  }
}

/** Accepted tokens never go backwards in the storage's order: counts those that did. */
function checkOrder(
  backend: FencingBackend,
  logged: readonly LoggedWrite[],
  tally: FencingTally,
): void {
  let newest: LoggedWrite | undefined;
  for (const entry of logged) {
    if (newest !== undefined && entry.token < newest.token) {
      tally.staleWritesAccepted++;
      tally.failures.push(
        `${backend} accepted stale token ${entry.token} (${entry.id}) after ${newest.token} (${newest.id})`,
      );
    }
    if (newest === undefined || entry.token > newest.token) newest = entry;
  }
}

/**
 * The checks both storages share, over one data set (`logged`, the stored `value`): order of
 * accepted tokens, every acknowledged write of `ownWrites` logged and no rejected one, nothing
 * logged that no holder wrote, the value the last logged write's.
 */
export function checkLog(
  backend: FencingBackend,
  writes: ReadonlyMap<string, WriteRecord>,
  stored: { readonly logged: readonly LoggedWrite[]; readonly value: string | undefined },
  ownWrites: (write: WriteRecord) => boolean,
  tally: FencingTally,
): void {
  const { logged, value } = stored;
  checkOrder(backend, logged, tally);
  const ids = new Set(logged.map((entry) => entry.id));
  for (const write of writes.values()) {
    if (write.backend !== backend || !ownWrites(write)) continue;
    if (write.result === 'ok' && !ids.has(write.id)) {
      tally.lostWrites++;
      tally.failures.push(
        `${backend} acknowledged write missing: ${write.id} (token ${write.token})`,
      );
    }
    if (write.result === 'stale' && ids.has(write.id)) {
      tally.violations++;
      tally.failures.push(`${backend} write rejected as stale but stored: ${write.id}`);
    }
  }
  for (const entry of logged) {
    if (!writes.has(entry.id)) {
      tally.violations++;
      tally.failures.push(`${backend} stored a write no holder made: ${entry.id}`);
    }
  }
  const last = logged.at(-1);
  if (last !== undefined && value !== last.id) {
    tally.violations++;
    tally.failures.push(`${backend} value is ${value}, not the last accepted write ${last.id}`);
  }
}

/** A stale rejection needs a newer token somewhere (else the fence refused a current one). */
export function checkRejections(
  backend: FencingBackend,
  writes: ReadonlyMap<string, WriteRecord>,
  newestSeen: bigint,
  tally: FencingTally,
): void {
  for (const write of writes.values()) {
    if (write.backend === backend && write.result === 'stale' && write.token >= newestSeen) {
      tally.violations++;
      tally.failures.push(
        `${backend} rejected ${write.id} (token ${write.token}) with no newer token`,
      );
    }
  }
}

/** The acknowledged Redis writes of each data set (epoch), in the order they were made. */
export function redisDataSets(
  writes: ReadonlyMap<string, WriteRecord>,
): Map<string, WriteRecord[]> {
  const epochs = new Map<string, WriteRecord[]>();
  for (const write of writes.values()) {
    if (write.backend !== 'redis' || write.result !== 'ok' || write.epoch === undefined) continue;
    epochs.set(write.epoch, [...(epochs.get(write.epoch) ?? []), write]);
  }
  return epochs;
}

/**
 * What Redis losing its data sets (all but `epoch`, the current one) cost: their acknowledged
 * writes, and older tokens accepted by a fence that forgot newer ones. Failures with
 * `persistent` (appendonly yes), else a note (the documented limit) when data was lost.
 */
export function checkRedisLosses(
  writes: ReadonlyMap<string, WriteRecord>,
  epochs: ReadonlyMap<string, WriteRecord[]>,
  current: {
    readonly epoch: string | undefined;
    readonly persistent: boolean;
    readonly count: number;
  },
  tally: FencingTally,
): void {
  // Data sets Redis has lost: their order is known from the acknowledgements only.
  let lostWithData = 0;
  for (const [lostEpoch, acked] of epochs) {
    if (lostEpoch === current.epoch) continue;
    acked.sort((a, b) => a.seq! - b.seq!);
    checkOrder(
      'redis',
      acked.map((write) => ({ seq: write.seq!, token: write.token, id: write.id })),
      tally,
    );
    lostWithData += acked.length;
  }
  // A write accepted in a later data set with a token below one accepted earlier.
  const acked = [...writes.values()].filter(
    (write) => write.backend === 'redis' && write.result === 'ok',
  );
  let forgottenFence = 0;
  for (const write of acked) {
    const newer = acked.find(
      (earlier) =>
        earlier.epoch !== write.epoch &&
        earlier.endedAt! + CLOCK_MARGIN_MS < write.startedAt &&
        earlier.token > write.token,
    );
    if (newer !== undefined) forgottenFence++;
  }
  if (current.persistent) {
    tally.lostWrites += lostWithData;
    tally.staleWritesAccepted += forgottenFence;
    if (lostWithData + forgottenFence > 0) {
      tally.failures.push(
        `Redis runs with appendonly yes yet lost its data: ${lostWithData} acknowledged ` +
          `writes gone, ${forgottenFence} older tokens accepted afterwards`,
      );
    }
  } else if (current.count > 1) {
    tally.notes.push(
      `Redis (no persistence) lost its data ${current.count - 1} time(s): ` +
        `${lostWithData} acknowledged writes went with it and ${forgottenFence} writes ` +
        'with a token older than one accepted before the loss were accepted after it ' +
        '(the fence was forgotten too: documented limit); lease tokens kept growing',
    );
  }
}

/**
 * A point in one replication stream. For PostgreSQL `stream` is the cluster's system identifier,
 * `epoch` its timeline and `lsn` the WAL location as a bigint. Positions from different streams
 * or epochs are not comparable: a failover or a restore starts a new history.
 */
export interface Position {
  readonly stream: string;
  readonly epoch: number;
  readonly lsn: bigint;
}

export type PositionOrder = 'before' | 'equal' | 'after' | 'incomparable';

/** Orders `a` relative to `b`; positions of different streams or epochs are `'incomparable'`. */
export function comparePositions(a: Position, b: Position): PositionOrder {
  if (a.stream !== b.stream || a.epoch !== b.epoch) return 'incomparable';
  if (a.lsn === b.lsn) return 'equal';
  return a.lsn < b.lsn ? 'before' : 'after';
}

/** True when `reached` is in the same history as `target` and at or past it. */
export function hasReached(reached: Position | undefined, target: Position): boolean {
  if (reached === undefined) return false;
  const order = comparePositions(reached, target);
  return order === 'equal' || order === 'after';
}

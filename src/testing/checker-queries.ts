import type { Violation } from './history.js';

// What the checks queue and report: cross-key questions and found violations.

export type CrossKeyGuarantee = 'monotonic-writes' | 'writes-follow-reads' | 'consistent-prefix';
export const CROSS_KEY: readonly CrossKeyGuarantee[] = [
  'monotonic-writes',
  'writes-follow-reads',
  'consistent-prefix',
];

/** A violation with where it sorts: by the operation checked, then guarantee, then key. */
export interface Found {
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
export type Queries = Map<string, Map<string, number[]>>;
export const QUERY_WIDTH = 6;

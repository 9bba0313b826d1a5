import { configError } from '../errors.js';

/**
 * How fresh a read must be:
 * - `'strong'`: the leader only.
 * - `'read-your-writes'` (default): a node at or past the session's write floor and read floor.
 * - `'monotonic'`: a node at or past the session's read floor (never older than a previous read).
 * - `{ maxStalenessMs }`: a replica whose measured lag is at most that many milliseconds.
 * - `'eventual'`: any healthy replica (the session's sticky one).
 */
export type ConsistencyLevel =
  | 'strong'
  | 'read-your-writes'
  | 'monotonic'
  | 'eventual'
  | { readonly maxStalenessMs: number };

/** The level used when none is given: read-your-writes (which includes monotonic reads). */
export const DEFAULT_LEVEL: ConsistencyLevel = 'read-your-writes';

/** Returns `level` if it is a valid `ConsistencyLevel`, else throws a `CONFIG` error naming `option`. */
export function validateLevel(level: unknown, option: string): ConsistencyLevel {
  if (
    level === 'strong' ||
    level === 'read-your-writes' ||
    level === 'monotonic' ||
    level === 'eventual'
  ) {
    return level;
  }
  if (typeof level === 'object' && level !== null) {
    const ms = (level as { maxStalenessMs?: unknown }).maxStalenessMs;
    if (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) return { maxStalenessMs: ms };
  }
  throw configError(
    `${option} must be 'strong', 'read-your-writes', 'monotonic', 'eventual' or { maxStalenessMs >= 0 }`,
    { [option]: level },
  );
}

/** A level as a short string for headers and attributes (`'max-staleness:500ms'` for bounds). */
export function levelName(level: ConsistencyLevel): string {
  return typeof level === 'object' ? `max-staleness:${level.maxStalenessMs}ms` : level;
}

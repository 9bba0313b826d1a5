import {
  type Attributes,
  type Counter,
  type MeterProvider,
  metrics,
  type Span,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { isCausewayError } from './errors.js';

/**
 * Telemetry names live here and nowhere else, so dashboards can rely on them. With no
 * OpenTelemetry SDK registered every call below is a no-op on the API's no-op objects.
 * Attributes never carry row data or secrets.
 */
export const INSTRUMENTATION_NAME = 'causeway';

export const SpanName = {
  ROUTE: 'causeway.route',
  TWO_PC: 'causeway.2pc',
  TWO_PC_PREPARE: 'causeway.2pc.prepare',
  TWO_PC_DECIDE: 'causeway.2pc.decide',
  TWO_PC_COMMIT: 'causeway.2pc.commit',
  TWO_PC_RECOVER: 'causeway.2pc.recover',
  LEASE_ACQUIRE: 'causeway.lease.acquire',
  FENCE_CHECK: 'causeway.fence.check',
} as const;
export type SpanName = (typeof SpanName)[keyof typeof SpanName];

/** Span events added to the active span (cheaper than spans for per-request facts). */
export const EventName = {
  ROUTE: 'causeway.route',
  INVALID_TOKEN: 'causeway.session.invalid_token',
  STORE_FAILURE: 'causeway.session.store_failure',
} as const;

export const Attr = {
  LEVEL: 'causeway.level',
  TARGET: 'causeway.target',
  NODE: 'causeway.node',
  REASON: 'causeway.reason',
  WAIT_MS: 'causeway.wait_ms',
  LAG: 'causeway.lag',
  GID: 'causeway.gid',
  OUTCOME: 'causeway.outcome',
  TOKEN: 'causeway.token',
  RESOURCE: 'causeway.resource',
  PARTICIPANT: 'causeway.participant',
  COORDINATOR: 'causeway.coordinator',
  /**
   * OpenTelemetry's `error.type` (semantic conventions), on spans that ended in an error: a
   * `CausewayError`'s code, else the error's name (`TypeError`), else `_OTHER`.
   */
  ERROR_TYPE: 'error.type',
} as const;

export const CounterName = {
  /** Reads routed by the session router, by `causeway.target` and `causeway.reason`. */
  ROUTED_READS: 'causeway.route.reads',
  /** Session tokens that failed verification, by `causeway.reason`. */
  INVALID_TOKENS: 'causeway.session.invalid_tokens',
  /** Session store failures that made the middleware fail safe to the leader. */
  SESSION_STORE_FAILURES: 'causeway.session.store_failures',
  /** Finished distributed transactions, by `causeway.outcome`. */
  TWO_PC_OUTCOMES: 'causeway.2pc.outcomes',
  /** Writes rejected for a stale fencing token, by `causeway.resource`. */
  FENCE_REJECTIONS: 'causeway.fence.rejections',
} as const;
export type CounterName = (typeof CounterName)[keyof typeof CounterName];

const COUNTER_DESCRIPTIONS: Readonly<Record<CounterName, string>> = {
  [CounterName.ROUTED_READS]: 'Reads routed by the session router',
  [CounterName.INVALID_TOKENS]: 'Session tokens that failed verification',
  [CounterName.SESSION_STORE_FAILURES]: 'Session store failures (reads went to the leader)',
  [CounterName.TWO_PC_OUTCOMES]: 'Finished distributed transactions by outcome',
  [CounterName.FENCE_REJECTIONS]: 'Writes rejected for a stale fencing token',
};

const tracer = trace.getTracer(INSTRUMENTATION_NAME);

/** The tracer all Causeway spans come from (a proxy: an SDK registered later is picked up). */
export function getTracer() {
  return tracer;
}

// The metrics API has no proxy provider, so counters are re-created when the global provider
// changes (an SDK registered after import) and cached otherwise: one identity check per add.
let counterProvider: MeterProvider | undefined;
let counters = new Map<CounterName | NearCacheCounterName, Counter>();

/** Adds `value` (default 1) to one of Causeway's counters. */
export function addToCounter(
  name: CounterName | NearCacheCounterName,
  attributes?: Attributes,
  value = 1,
): void {
  const provider = metrics.getMeterProvider();
  if (provider !== counterProvider) {
    counterProvider = provider;
    counters = new Map();
  }
  let counter = counters.get(name);
  if (counter === undefined) {
    counter = provider.getMeter(INSTRUMENTATION_NAME).createCounter(name, {
      description:
        name in COUNTER_DESCRIPTIONS
          ? COUNTER_DESCRIPTIONS[name as CounterName]
          : NEAR_CACHE_COUNTER_DESCRIPTIONS[name as NearCacheCounterName],
    });
    counters.set(name, counter);
  }
  counter.add(value, attributes);
}

/**
 * Runs `fn` inside an active span: records an error (status ERROR) if it throws or rejects,
 * and ends the span on every path. The error is rethrown unchanged.
 */
export async function withSpan<T>(
  name: SpanName | NearCacheSpanName,
  attributes: Attributes,
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      recordError(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The `error.type` of `error`: a `CausewayError`'s code, an error's name, else `_OTHER`. */
export function errorType(error: unknown): string {
  if (isCausewayError(error)) return error.code;
  if (error instanceof Error && error.name !== '') return error.name;
  return '_OTHER';
}

/** Records `error` on `span`, sets `error.type` (see `errorType`) and its status to ERROR. */
export function recordError(span: Span, error: unknown): void {
  span.setAttribute(Attr.ERROR_TYPE, errorType(error));
  if (error instanceof Error) {
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
}

// Near cache (`causeway/pg`, adapters/pg/near-cache): its names, in one block.

export const NearCacheSpanName = {
  /** A snapshot: slot created, tables loaded, stream started (attributes: rows, position). */
  SNAPSHOT: 'causeway.near_cache.snapshot',
  /** A background check of the slot and the primary's history (carries the position event). */
  SLOT_CHECK: 'causeway.near_cache.slot_check',
} as const;
export type NearCacheSpanName = (typeof NearCacheSpanName)[keyof typeof NearCacheSpanName];

export const NearCacheEventName = {
  /** One read: `causeway.target` (near-cache, replica, leader) and `causeway.reason`. */
  READ: 'causeway.near_cache.read',
  /** The cache stopped answering from memory (`causeway.reason`). */
  STALE: 'causeway.near_cache.stale',
  /** A slot check: the cache's position and lag (`causeway.lag` bytes). */
  POSITION: 'causeway.near_cache.position',
} as const;

export const NearCacheAttr = {
  /** The cache's position as `epoch/lsn` text, the lsn in hexadecimal (e.g. `1/16b374d8`). */
  POSITION: 'causeway.near_cache.position',
  ROWS: 'causeway.near_cache.rows',
} as const;

export const NearCacheCounterName = {
  /** Near-cache reads by `causeway.target` and `causeway.reason` (hits and misses). */
  READS: 'causeway.near_cache.reads',
  /** Transactions applied from the replication stream. */
  COMMITS: 'causeway.near_cache.commits',
  /** Times the cache went stale, by `causeway.reason`. */
  STALE: 'causeway.near_cache.stale',
  /** Snapshots loaded (the first one and every re-snapshot). */
  SNAPSHOTS: 'causeway.near_cache.snapshots',
} as const;
export type NearCacheCounterName = (typeof NearCacheCounterName)[keyof typeof NearCacheCounterName];

const NEAR_CACHE_COUNTER_DESCRIPTIONS: Readonly<Record<NearCacheCounterName, string>> = {
  'causeway.near_cache.reads': 'Near-cache reads by where they were answered and why',
  'causeway.near_cache.commits': 'Transactions the near cache applied from the stream',
  'causeway.near_cache.stale': 'Times the near cache went stale, by reason',
  'causeway.near_cache.snapshots': 'Snapshots the near cache loaded',
};

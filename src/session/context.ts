import { AsyncLocalStorage } from 'node:async_hooks';
import { knownOptions } from '../options.js';
import { type ConsistencyLevel, DEFAULT_LEVEL, validateLevel } from './level.js';
import { comparePositions, type Position } from './position.js';
import type { RouteDecision } from './route-decision.js';
import {
  assertSessionState,
  floorsOnly,
  MAX_SESSION_STREAMS,
  newSessionId,
  type SessionState,
  type StreamFloors,
  streamFloorsOf,
} from './state.js';
import { hashString } from './sticky.js';

export {
  assertSessionState,
  MAX_SESSION_STREAMS,
  newSessionId,
  type SessionState,
  type StreamFloors,
} from './state.js';

/** The floors of one stream, and when this process last raised each. */
interface StreamEntry {
  readonly stream: string;
  readonly epoch: number;
  write: Position | undefined;
  read: Position | undefined;
  // performance.now() when each floor was last raised in this process; undefined when the floor
  // came from a state (token, session store), whose age is unknown.
  writeRaisedAt: number | undefined;
  readRaisedAt: number | undefined;
}

/**
 * The session of one request, job or script: its floors, the level its reads ask for, and
 * whether its token must be re-issued. It keeps a write and a read floor per stream (cluster), so
 * a session using two clusters keeps its guarantees on both. Floors only move forward within one
 * history; a position of a newer epoch of a stream (a failover) re-bases that stream only.
 */
export class SessionContext {
  readonly id: string;
  /** The level reads in this context ask for (the router's default when a call names none). */
  level: ConsistencyLevel;
  /**
   * True when the session's floors may be incomplete (e.g. its session store was unreachable):
   * floor-based reads (read-your-writes, monotonic) then go to the leader, never stale.
   */
  floorsUncertain = false;
  /** Route decisions made in this context, kept only when set to an array (debug header). */
  routes: RouteDecision[] | undefined;
  /**
   * Told once, when a floor first moves (the middleware then arranges to write the token back,
   * so requests that change nothing pay nothing for it).
   */
  changeListener: { sessionChanged(): void } | undefined;
  // Insertion order is recency: the stream raised last is the map's last entry.
  readonly #streams = new Map<string, StreamEntry>();
  #latest: StreamEntry | undefined;
  #writeRaises = 0;
  #changed = false;
  #idHash: number | undefined;

  /**
   * Starts from `state` (default: a fresh id, no floors) at `level`. A state that is not a
   * `SessionState` (see `assertSessionState`) is `INVALID_INPUT` (states decoded by hand from
   * JSON carry the lsn as a string, which would compare wrongly); a bad level is `CONFIG`.
   */
  constructor(
    state: SessionState = { id: newSessionId() },
    level: ConsistencyLevel = DEFAULT_LEVEL,
  ) {
    assertSessionState(state);
    this.id = state.id;
    this.level = level === DEFAULT_LEVEL ? level : validateLevel(level, 'level');
    for (const floors of streamFloorsOf(state)) {
      const { writeFloor, readFloor } = floors;
      if (writeFloor !== undefined) this.#raise(writeFloor, true, true);
      // A pair of floors that disagree on the history keeps only the write floor.
      if (
        readFloor !== undefined &&
        (writeFloor === undefined || comparePositions(writeFloor, readFloor) !== 'incomparable')
      ) {
        this.#raise(readFloor, false, true);
      }
    }
  }

  /** The current state, as a token or a session store would keep it. */
  get state(): SessionState {
    const latest = this.#latest;
    if (latest === undefined) return { id: this.id };
    const state: { id: string; otherStreams?: StreamFloors[] } & StreamFloors = {
      id: this.id,
      ...floorsOnly(latest.write, latest.read),
    };
    if (this.#streams.size > 1) {
      const others: StreamFloors[] = [];
      for (const entry of this.#streams.values()) {
        if (entry !== latest) others.push(floorsOnly(entry.write, entry.read));
      }
      state.otherStreams = others;
    }
    return state;
  }

  /** The write floor on the stream raised last (a single-cluster session's only stream). */
  get writeFloor(): Position | undefined {
    return this.#latest?.write;
  }

  /** The read floor on the stream raised last (a single-cluster session's only stream). */
  get readFloor(): Position | undefined {
    return this.#latest?.read;
  }

  /** The streams this session keeps floors for, least recently raised first. */
  get streams(): string[] {
    return [...this.#streams.keys()];
  }

  /** The write floor on `stream` (undefined: the stream raised last). */
  writeFloorOn(stream: string | undefined): Position | undefined {
    return this.#entry(stream)?.write;
  }

  /**
   * The floor a read at `level` on `stream` must reach, or undefined when the level needs none or
   * the session has no floor there. Without `stream`: the stream the session raised last.
   */
  floorFor(level: ConsistencyLevel, stream?: string): Position | undefined {
    const entry = this.#entry(stream);
    if (entry === undefined) return undefined;
    if (level === 'read-your-writes') return laterOf(entry.write, entry.read);
    if (level === 'monotonic') return entry.read;
    return undefined;
  }

  /** True once a floor moved since the context was created: the token must be re-issued. */
  get changed(): boolean {
    return this.#changed;
  }

  /** How many times a write floor (of any stream) was raised in this context. */
  get writeFloorRaises(): number {
    return this.#writeRaises;
  }

  /** Raises the write floor of the position's stream after a commit on its leader at `position`. */
  noteWrite(position: Position): void {
    this.#raise(position, true, false);
  }

  /**
   * Raises the read floor of the position's stream after a read that saw at most `position`
   * (read after the query).
   */
  noteRead(position: Position): void {
    this.#raise(position, false, false);
  }

  /**
   * Drops the floors of `stream` (the router calls this after a change of epoch, or when the
   * stream's leader reports another history); without `stream`, the floors of every stream.
   */
  rebase(stream?: string): void {
    if (stream === undefined) {
      if (this.#streams.size === 0) return;
      this.#streams.clear();
    } else if (!this.#streams.delete(stream)) {
      return;
    }
    this.#latest = lastOf(this.#streams);
    this.#markChanged();
  }

  #entry(stream: string | undefined): StreamEntry | undefined {
    if (stream === undefined || stream === this.#latest?.stream) return this.#latest;
    return this.#streams.get(stream);
  }

  /**
   * Moves a floor forward: the later position within one history; a position of a newer epoch
   * (or of a stream not yet kept) starts that stream's floors over; one of an older epoch of the
   * stream (a late report from before a failover) is ignored. `restored` floors (from a state)
   * have no known age and do not count as a change.
   */
  #raise(position: Position, write: boolean, restored: boolean): void {
    const { stream, epoch } = position;
    let entry = this.#entry(stream);
    if (entry !== undefined && epoch < entry.epoch) return;
    if (entry === undefined || epoch > entry.epoch) {
      if (entry !== undefined) this.#streams.delete(stream);
      entry = {
        stream,
        epoch,
        write: undefined,
        read: undefined,
        writeRaisedAt: undefined,
        readRaisedAt: undefined,
      };
      this.#streams.set(stream, entry);
      if (this.#streams.size > MAX_SESSION_STREAMS) {
        this.#streams.delete(this.#streams.keys().next().value!);
      }
    } else {
      const current = write ? entry.write : entry.read;
      if (current !== undefined && position.lsn <= current.lsn) return;
      if (entry !== this.#latest) {
        this.#streams.delete(stream);
        this.#streams.set(stream, entry);
      }
    }
    this.#latest = entry;
    const raisedAt = restored ? undefined : performance.now();
    if (write) {
      entry.write = position;
      entry.writeRaisedAt = raisedAt;
    } else {
      entry.read = position;
      entry.readRaisedAt = raisedAt;
    }
    if (restored) return;
    if (write) this.#writeRaises++;
    this.#markChanged();
  }

  /**
   * performance.now() when the floor of `level` (as `floorFor`) on `stream` was last raised in
   * this process; undefined when there is none or its age is unknown. The floor's position
   * existed on the leader by then, so a replica `lag` behind the leader applies it by about that
   * time plus `lag`.
   */
  #floorRaisedAt(level: ConsistencyLevel, stream: string | undefined): number | undefined {
    const entry = this.#entry(stream);
    if (entry === undefined) return undefined;
    if (level === 'monotonic') return entry.readRaisedAt;
    if (level !== 'read-your-writes') return undefined;
    const { write, read } = entry;
    if (read === undefined) return entry.writeRaisedAt;
    if (write === undefined || read.lsn > write.lsn) return entry.readRaisedAt;
    if (write.lsn > read.lsn) return entry.writeRaisedAt;
    // Both floors at one position: it existed since the earlier known of the two moments.
    return earlierOf(entry.writeRaisedAt, entry.readRaisedAt);
  }

  /**
   * Milliseconds since the floor a read at `level` on `stream` (default: the stream raised last)
   * must reach was last raised in this process; 0 when there is no floor or its age is unknown
   * (restored from a token or a session store, and not raised since: treated as raised just
   * now). The router subtracts it from a replica's lag to estimate how long the replica still
   * needs.
   * @internal For the router; stripped from the published declarations.
   */
  floorAgeMs(level: ConsistencyLevel, stream?: string): number {
    const raisedAt = this.#floorRaisedAt(level, stream);
    return raisedAt === undefined ? 0 : performance.now() - raisedAt;
  }

  #markChanged(): void {
    if (this.#changed) return;
    this.#changed = true;
    this.changeListener?.sessionChanged();
  }

  /** Records a route decision when `routes` is being kept. */
  recordRoute(decision: RouteDecision): void {
    this.routes?.push(decision);
  }

  /** 32-bit hash of the id for rendezvous hashing, computed once per context. */
  get idHash(): number {
    if (this.#idHash === undefined) this.#idHash = hashString(this.id);
    return this.#idHash;
  }
}

function lastOf(streams: Map<string, StreamEntry>): StreamEntry | undefined {
  let last: StreamEntry | undefined;
  for (const entry of streams.values()) last = entry;
  return last;
}

/** The earlier of two moments, either of which may be unknown. */
function earlierOf(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** The later of two positions of one history (either may be missing). */
function laterOf(a: Position | undefined, b: Position | undefined): Position | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a.lsn >= b.lsn ? a : b;
}

const storage = new AsyncLocalStorage<SessionContext>();

export interface WithSessionOptions {
  /** The level for reads in `fn`. Default: the context's own level, or `'read-your-writes'`. */
  level?: ConsistencyLevel;
}

/**
 * Runs `fn` inside a session, so that the routed pool (and anything calling `currentSession()`)
 * sees it through AsyncLocalStorage. Pass a `SessionContext` to keep using it afterwards (e.g. to
 * re-issue its token), a `SessionState` (e.g. decoded from a job) to start from it, or undefined
 * for a fresh session.
 */
export function withSession<T>(
  session: SessionContext | SessionState | undefined,
  fn: (session: SessionContext) => T,
  options?: WithSessionOptions,
): T {
  // Checked only when given: withSession runs once per request.
  const level =
    options === undefined ? undefined : knownOptions(options, 'withSession', ['level']).level;
  const context = session instanceof SessionContext ? session : new SessionContext(session, level);
  if (level !== undefined) context.level = validateLevel(level, 'level');
  return storage.run(context, fn, context);
}

/** The session of the current async context, or undefined outside any. */
export function currentSession(): SessionContext | undefined {
  return storage.getStore();
}

/**
 * `callback` bound to the current session (or to none): whoever calls it later, it runs as the
 * session of the code that bound it. For callbacks a library calls from another request's
 * context, e.g. pg-pool handing a released connection to the next waiter from `release()`.
 * Cheaper than `AsyncResource.bind`, and only the session is carried.
 */
export function bindToSession<A extends unknown[], R>(
  callback: (...args: A) => R,
): (...args: A) => R {
  const session = storage.getStore();
  if (session === undefined) return (...args) => storage.exit(callback, ...args);
  return (...args) => storage.run(session, callback, ...args);
}

/**
 * The state after merging `incoming` into `kept` (how session stores and the middleware combine
 * two views of one user's session): `kept`'s id, and each stream's floors moved forward as by
 * `noteWrite` and `noteRead` (later position within a history, a newer epoch replaces that
 * stream's floors, an older one is ignored; floors of other streams are kept side by side, up to
 * `MAX_SESSION_STREAMS`).
 */
export function mergeSessionStates(kept: SessionState, incoming: SessionState): SessionState {
  const merged = new SessionContext(kept);
  for (const { writeFloor, readFloor } of streamFloorsOf(incoming)) {
    if (writeFloor !== undefined) merged.noteWrite(writeFloor);
    if (readFloor !== undefined) merged.noteRead(readFloor);
  }
  return merged.state;
}

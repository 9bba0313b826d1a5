import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';
import { invalidInput } from '../errors.js';
import { knownOptions } from '../options.js';
import { type ConsistencyLevel, DEFAULT_LEVEL, validateLevel } from './level.js';
import { comparePositions, type Position } from './position.js';
import type { RouteDecision } from './route-decision.js';
import { hashString } from './sticky.js';

/**
 * What a session remembers between requests: its id (which picks its sticky replica) and two
 * floors. Both floors, when set, belong to the same stream and epoch.
 */
export interface SessionState {
  /** Opaque id, at most 64 bytes of UTF-8; `newSessionId()` makes a random one. */
  readonly id: string;
  /** Position of the session's last write; read-your-writes reads need a node at or past it. */
  readonly writeFloor?: Position;
  /** Highest position the session has read; monotonic reads need a node at or past it. */
  readonly readFloor?: Position;
}

const ID_BYTES = 12;
// Random bytes are drawn 3 KB at a time (as crypto.randomUUID does): one syscall per 256 ids.
const idPool = Buffer.allocUnsafe(ID_BYTES * 256);
let idPoolOffset = idPool.length;

/** A random session id: 12 random bytes (96 bits) as 16 URL-safe characters. */
export function newSessionId(): string {
  if (idPoolOffset === idPool.length) {
    randomFillSync(idPool);
    idPoolOffset = 0;
  }
  const id = idPool.toString('base64url', idPoolOffset, idPoolOffset + ID_BYTES);
  idPoolOffset += ID_BYTES;
  return id;
}

/**
 * The session of one request, job or script: its floors, the level its reads ask for, and
 * whether its token must be re-issued. Floors only move forward within one history; a position
 * from a newer history (a higher epoch, or another stream) replaces both floors.
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
  #writeFloor: Position | undefined;
  #readFloor: Position | undefined;
  // performance.now() when each floor was last raised in this process; undefined when the floor
  // came from a state (token, session store), whose age is unknown.
  #writeFloorRaisedAt: number | undefined;
  #readFloorRaisedAt: number | undefined;
  #changed = false;
  #idHash: number | undefined;

  /**
   * Starts from `state` (default: a fresh id, no floors) at `level`. A state that is not
   * `{ id: non-empty string, writeFloor?, readFloor? }` with floors `{ stream: string, epoch:
   * integer >= 0, lsn: bigint >= 0 }` is `INVALID_INPUT` (states decoded by hand from JSON carry
   * the lsn as a string, which would compare wrongly); a bad level is `CONFIG`.
   */
  constructor(
    state: SessionState = { id: newSessionId() },
    level: ConsistencyLevel = DEFAULT_LEVEL,
  ) {
    assertSessionState(state);
    this.id = state.id;
    this.level = level === DEFAULT_LEVEL ? level : validateLevel(level, 'level');
    this.#writeFloor = state.writeFloor;
    this.#readFloor = state.readFloor;
    // A state whose floors disagree on the history keeps only the write floor.
    if (
      this.#writeFloor !== undefined &&
      this.#readFloor !== undefined &&
      comparePositions(this.#writeFloor, this.#readFloor) === 'incomparable'
    ) {
      this.#readFloor = undefined;
    }
  }

  /** The current state, as a token or a session store would keep it. */
  get state(): SessionState {
    const state: { id: string; writeFloor?: Position; readFloor?: Position } = { id: this.id };
    if (this.#writeFloor !== undefined) state.writeFloor = this.#writeFloor;
    if (this.#readFloor !== undefined) state.readFloor = this.#readFloor;
    return state;
  }

  get writeFloor(): Position | undefined {
    return this.#writeFloor;
  }

  get readFloor(): Position | undefined {
    return this.#readFloor;
  }

  /** The floor a read at `level` must reach, or undefined when the level needs none. */
  floorFor(level: ConsistencyLevel): Position | undefined {
    if (level === 'read-your-writes') return laterOf(this.#writeFloor, this.#readFloor);
    if (level === 'monotonic') return this.#readFloor;
    return undefined;
  }

  /** True once a floor moved since the context was created: the token must be re-issued. */
  get changed(): boolean {
    return this.#changed;
  }

  /** Raises the write floor after a commit on the leader at `position`. */
  noteWrite(position: Position): void {
    const next = this.#advance(this.#writeFloor, position);
    if (next !== this.#writeFloor) {
      this.#writeFloor = next;
      this.#writeFloorRaisedAt = performance.now();
      this.#markChanged();
    }
  }

  /** Raises the read floor after a read that saw at most `position` (read after the query). */
  noteRead(position: Position): void {
    const next = this.#advance(this.#readFloor, position);
    if (next !== this.#readFloor) {
      this.#readFloor = next;
      this.#readFloorRaisedAt = performance.now();
      this.#markChanged();
    }
  }

  /** Drops both floors (the router calls this after a change of stream or epoch). */
  rebase(): void {
    if (this.#writeFloor === undefined && this.#readFloor === undefined) return;
    this.#dropFloors();
    this.#markChanged();
  }

  #dropFloors(): void {
    this.#writeFloor = undefined;
    this.#readFloor = undefined;
    this.#writeFloorRaisedAt = undefined;
    this.#readFloorRaisedAt = undefined;
  }

  /**
   * performance.now() when the floor of `level` (as `floorFor`) was last raised in this process;
   * undefined when there is none or its age is unknown. The floor's position existed on the leader
   * by then, so a replica `lag` behind the leader applies it by about that time plus `lag`.
   */
  #floorRaisedAt(level: ConsistencyLevel): number | undefined {
    if (level === 'monotonic') return this.#readFloorRaisedAt;
    if (level !== 'read-your-writes') return undefined;
    const write = this.#writeFloor;
    const read = this.#readFloor;
    if (read === undefined) return this.#writeFloorRaisedAt;
    if (write === undefined || read.lsn > write.lsn) return this.#readFloorRaisedAt;
    if (write.lsn > read.lsn) return this.#writeFloorRaisedAt;
    // Both floors at one position: it existed since the earlier known of the two moments.
    return earlierOf(this.#writeFloorRaisedAt, this.#readFloorRaisedAt);
  }

  /**
   * Milliseconds since the floor a read at `level` must reach was last raised in this process; 0
   * when there is no floor or its age is unknown (restored from a token or a session store, and
   * not raised since: treated as raised just now). The router subtracts it from a replica's lag
   * to estimate how long the replica still needs.
   * @internal For the router; stripped from the published declarations.
   */
  floorAgeMs(level: ConsistencyLevel): number {
    const raisedAt = this.#floorRaisedAt(level);
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

  /**
   * Returns the floor after seeing `position`: the later of the two in one history; `position`
   * when it starts a newer history (which also drops the other floor); the current floor when
   * `position` belongs to an older epoch of the same stream (a late report from before a failover).
   */
  #advance(current: Position | undefined, position: Position): Position | undefined {
    const other = current ?? this.#writeFloor ?? this.#readFloor;
    if (other === undefined) return position;
    const order = comparePositions(position, other);
    if (order !== 'incomparable') {
      if (current === undefined) return position;
      return comparePositions(position, current) === 'after' ? position : current;
    }
    if (position.stream === other.stream && position.epoch < other.epoch) return current;
    this.#dropFloors();
    this.#markChanged();
    return position;
  }
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

function isPosition(value: unknown): value is Position {
  const position = value as Partial<Position> | null;
  return (
    typeof position === 'object' &&
    position !== null &&
    typeof position.stream === 'string' &&
    Number.isInteger(position.epoch) &&
    (position.epoch as number) >= 0 &&
    typeof position.lsn === 'bigint' &&
    position.lsn >= 0n
  );
}

/**
 * Throws `INVALID_INPUT` unless `state` is a `SessionState`: `{ id: non-empty string,
 * writeFloor?, readFloor? }` with floors `{ stream: string, epoch: integer >= 0, lsn: bigint >= 0 }`.
 */
export function assertSessionState(state: unknown): asserts state is SessionState {
  const { id, writeFloor, readFloor } = (state ?? {}) as Partial<SessionState>;
  if (
    typeof state !== 'object' ||
    state === null ||
    typeof id !== 'string' ||
    id === '' ||
    (writeFloor !== undefined && !isPosition(writeFloor)) ||
    (readFloor !== undefined && !isPosition(readFloor))
  ) {
    throw invalidInput(
      'A session state is { id: non-empty string, writeFloor?, readFloor? } with floors { stream, epoch, lsn: bigint }',
    );
  }
}

/** The session of the current async context, or undefined outside any. */
export function currentSession(): SessionContext | undefined {
  return storage.getStore();
}

/**
 * The state after merging `incoming` into `kept` (how session stores and the middleware combine
 * two views of one user's session): `kept`'s id, and floors moved forward as by `noteWrite` and
 * `noteRead` (later position within a history, a newer history replaces, an older one is ignored).
 */
export function mergeSessionStates(kept: SessionState, incoming: SessionState): SessionState {
  const merged = new SessionContext(kept);
  if (incoming.writeFloor !== undefined) merged.noteWrite(incoming.writeFloor);
  if (incoming.readFloor !== undefined) merged.noteRead(incoming.readFloor);
  return merged.state;
}

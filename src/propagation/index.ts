// The session across services: an OpenTelemetry propagator carrying the session token wherever
// trace context already travels, a fetch for outgoing calls, and withFloor for a raw position
// carried in a message. A service that receives the token behind its own consistency() (sharing
// the secret) reads at least what the calling session wrote.
import {
  type Context,
  createContextKey,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
} from '@opentelemetry/api';
import { CausewayError, configError, invalidInput } from '../errors.js';
import { functionOption, knownOptions } from '../options.js';
import {
  currentSession,
  SessionContext,
  type SessionState,
  withSession,
} from '../session/context.js';
import type { ConsistencyLevel } from '../session/level.js';
import type { Position } from '../session/position.js';
import { streamFloorsOf } from '../session/state.js';

/** The header (and propagation field) carrying the session token, as the middleware reads it. */
const FIELD = 'causeway-session';
const SESSION_STATE = createContextKey('causeway.session.state');

/** What the propagation helpers need of a `consistency()` handler (any adapter's fits). */
export interface SessionSigner {
  issue(state: SessionState): string;
  verify(token: string): SessionState;
}

/**
 * A `TextMapPropagator` carrying the current session (AsyncLocalStorage) as the
 * `causeway-session` field: `inject` signs it into outgoing carriers (HTTP headers, message
 * headers), `extract` verifies an incoming one into the returned context, for
 * `sessionFromContext()`. A missing, forged or foreign token extracts as no session, never an
 * error. Combine it with the trace propagator:
 * `propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new
 * W3CTraceContextPropagator(), new SessionPropagator(c)] }))`.
 */
export class SessionPropagator implements TextMapPropagator {
  readonly #signer: SessionSigner;

  constructor(signer: SessionSigner) {
    this.#signer = checkSigner('SessionPropagator', signer);
  }

  inject(context: Context, carrier: unknown, setter: TextMapSetter): void {
    const session = currentSession();
    const state = session?.state ?? (context.getValue(SESSION_STATE) as SessionState | undefined);
    if (state !== undefined) setter.set(carrier, FIELD, this.#signer.issue(state));
  }

  extract(context: Context, carrier: unknown, getter: TextMapGetter): Context {
    const raw = getter.get(carrier, FIELD);
    const token = Array.isArray(raw) ? raw[0] : raw;
    if (token === undefined || token === '') return context;
    try {
      return context.setValue(SESSION_STATE, this.#signer.verify(token));
    } catch (error) {
      if (error instanceof CausewayError) return context;
      throw error;
    }
  }

  fields(): string[] {
    return [FIELD];
  }
}

/** `signer` when it has `issue` and `verify` (a `consistency()` handler does), else `CONFIG`. */
function checkSigner(owner: string, signer: SessionSigner): SessionSigner {
  if (typeof signer?.issue !== 'function' || typeof signer.verify !== 'function') {
    throw configError(`${owner}: signer must be a consistency() handler (issue and verify)`);
  }
  return signer;
}

/** The session state a `SessionPropagator` extracted into `context`, if any. */
export function sessionFromContext(context: Context): SessionState | undefined {
  return context.getValue(SESSION_STATE) as SessionState | undefined;
}

type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * `fetch` for calls to other services: sends the current session's token (unless the request
 * sets one) and, when the service answers with a token of its own (it wrote), moves the current
 * session's floors forward to it, so the caller then reads what the callee wrote. A forged or
 * foreign answer is ignored. Outside a session it is plain `fetch`.
 */
export function forwardingFetch(signer: SessionSigner, inner?: FetchLike): FetchLike {
  checkSigner('forwardingFetch', signer);
  const send = functionOption<FetchLike>('forwardingFetch: inner', inner, (input, init) =>
    globalThis.fetch(input, init),
  );
  return async (input, init) => {
    const session = currentSession();
    if (session === undefined) return send(input, init);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
    if (!headers.has(FIELD)) headers.set(FIELD, signer.issue(session.state));
    const response = await send(input, { ...init, headers });
    const answered = response.headers.get(FIELD);
    if (answered !== null && answered !== '') {
      try {
        absorb(session, signer.verify(answered));
      } catch (error) {
        if (!(error instanceof CausewayError)) throw error;
      }
    }
    return response;
  };
}

function absorb(session: SessionContext, state: SessionState): void {
  for (const { writeFloor, readFloor } of streamFloorsOf(state)) {
    if (writeFloor !== undefined) session.noteWrite(writeFloor);
    if (readFloor !== undefined) session.noteRead(readFloor);
  }
}

/** A position as carried in a message: its lsn a bigint, or a decimal string (JSON has no bigint). */
export interface CarriedPosition {
  readonly stream: string;
  readonly epoch: number;
  readonly lsn: bigint | string;
}

/**
 * Runs `fn` in a fresh session whose reads wait for `position` (read-your-writes: a replica at or
 * past it, else the leader): for a consumer of a message (Kafka, a queue, a webhook) that carries
 * the producer's write position, e.g. `currentSession()?.writeFloor` with its lsn as a string.
 * Undefined runs `fn` in a fresh session without a floor. A malformed position is `INVALID_INPUT`.
 */
export function withFloor<T>(
  position: CarriedPosition | undefined,
  fn: (session: SessionContext) => T,
  options: { level?: ConsistencyLevel } = {},
): T {
  const { level } = knownOptions(options, 'withFloor', ['level']);
  const session = new SessionContext(undefined, level);
  if (position !== undefined) session.noteWrite(toPosition(position));
  return withSession(session, fn);
}

function toPosition(carried: CarriedPosition): Position {
  const { stream, epoch, lsn } = (carried ?? {}) as Partial<CarriedPosition>;
  const parsed =
    typeof lsn === 'bigint'
      ? lsn
      : typeof lsn === 'string' && /^\d{1,20}$/.test(lsn)
        ? BigInt(lsn)
        : -1n;
  if (
    typeof stream !== 'string' ||
    !Number.isInteger(epoch) ||
    (epoch as number) < 0 ||
    parsed < 0n
  ) {
    throw invalidInput(
      'withFloor: a position is { stream: string, epoch: integer >= 0, lsn: bigint or decimal string }',
    );
  }
  return { stream, epoch: epoch as number, lsn: parsed };
}

import type { ServerResponse } from 'node:http';
import { type Span, trace } from '@opentelemetry/api';
import { Attr, addToCounter, CounterName, EventName, errorType } from '../telemetry.js';
import type { SessionContext, SessionState } from './context.js';
import { appendSetCookie, formatRoute, ROUTE_HEADER, SESSION_HEADER } from './express-http.js';
import type { ResolvedOptions } from './express-options.js';
import type { Position } from './position.js';
import type { VerifiedToken } from './token.js';

// Writing a request's session back: the token (header and cookie), the debug route header and
// the session store, just before the response headers go out.

export interface StoredSession {
  readonly key: string;
  readonly span: Span | undefined;
  readonly state: SessionState | undefined;
  readonly failed: boolean;
}

const kWriteBack = Symbol('causeway.writeBack');
type HookedResponse = ServerResponse & { [kWriteBack]?: WriteBack };

/**
 * What a response writes back just before its headers go out: the token (header and cookie) if
 * the session changed, the debug header, the session store. It hooks `res.writeHead` with one
 * shared function and a symbol-keyed field, measurably cheaper than a closure per response
 * (bench/middleware.bench.ts), and only once there is something to write.
 */
export class WriteBack {
  /** The cookie's `Secure` attribute. */
  secure = false;
  /** The `writeHead` the response had when hooked (the prototype's, or another middleware's). */
  previousWriteHead: ServerResponse['writeHead'] | undefined;
  done = false;
  readonly initialWriteFloor: Position | undefined;

  constructor(
    readonly res: HookedResponse,
    readonly options: ResolvedOptions,
    readonly session: SessionContext,
    readonly verified: VerifiedToken | undefined,
    readonly clearBadCookie: boolean,
    readonly stored: StoredSession | undefined,
  ) {
    this.initialWriteFloor = session.writeFloor;
  }

  /** Hooks the response (no-op once its headers are sent or it is hooked). */
  hook(): void {
    const res = this.res;
    if (res.headersSent || res[kWriteBack] !== undefined) return;
    this.previousWriteHead = res.writeHead;
    res[kWriteBack] = this;
    res.writeHead = writeHeadWithToken as ServerResponse['writeHead'];
  }

  /** The session's first change: from now on there is a token to write back. */
  sessionChanged(): void {
    this.hook();
  }

  write(): void {
    const { res, options, session, verified, stored } = this;
    const { tokens } = options;
    if (session.changed || (verified !== undefined && tokens.needsRefresh(verified))) {
      const token = tokens.issue(session.state);
      res.setHeader(SESSION_HEADER, token);
      appendSetCookie(
        res,
        `${SESSION_HEADER}=${token}${options.cookieTail}${this.secure ? '; Secure' : ''}`,
      );
    } else if (this.clearBadCookie) {
      appendSetCookie(res, options.clearCookie);
    }
    if (session.routes !== undefined && session.routes.length > 0) {
      res.setHeader(ROUTE_HEADER, session.routes.map(formatRoute).join(', '));
    }
    if (stored !== undefined && session.writeFloor !== this.initialWriteFloor) {
      options.store
        ?.set(stored.key, session.state)
        .catch((error: unknown) => recordStoreFailure(stored.span, error));
    }
  }
}

function writeHeadWithToken(
  this: HookedResponse,
  statusCode: number,
  reason?: unknown,
  headers?: unknown,
): ServerResponse {
  // Installed only together with its write-back. It stays installed after use: assigning
  // `writeHead` back costs more (V8 re-shapes every response) than one extra call would.
  const writeBack = this[kWriteBack]!;
  if (!writeBack.done) {
    writeBack.done = true;
    try {
      writeBack.write();
    } catch (error) {
      // Never break the response over the session: it only loses this response's token.
      trace.getActiveSpan()?.recordException(error instanceof Error ? error : String(error));
    }
  }
  return (writeBack.previousWriteHead as (...args: unknown[]) => ServerResponse).call(
    this,
    statusCode,
    reason,
    headers,
  );
}

/** Counts a session store failure and notes it on the request's span. */
export function recordStoreFailure(span: Span | undefined, error: unknown): void {
  addToCounter(CounterName.SESSION_STORE_FAILURES);
  span?.addEvent(EventName.STORE_FAILURE, {
    [Attr.REASON]: errorType(error),
  });
}

import type { ServerResponse } from 'node:http';
import { trace } from '@opentelemetry/api';
import type { HeaderSink, RequestExchange } from './exchange.js';
import { appendSetCookie } from './express-http.js';

// Writing a request's session back on a Node response (Express, Nest, Koa): the exchange's
// headers, just before the response headers go out, whatever wrote the response (a handler, or
// the framework's error handling, which may clear the headers set before).

const kWriteBack = Symbol('causeway.writeBack');
type HookedResponse = ServerResponse & { [kWriteBack]?: WriteBack };

/**
 * Hooks `res.writeHead` so that the exchange writes back just before the headers go out. It uses
 * one shared function and a symbol-keyed field, measurably cheaper than a closure per response
 * (bench/middleware.bench.ts), and hooks only once there is something to write.
 */
export class WriteBack {
  /** The `writeHead` the response had when hooked (the prototype's, or another middleware's). */
  previousWriteHead: ServerResponse['writeHead'] | undefined;

  constructor(
    readonly res: HookedResponse,
    readonly exchange: Pick<RequestExchange<unknown>, 'writeBack'>,
  ) {}

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

  /** Sets one header on the response (`Set-Cookie` and CORS exposure appended). */
  readonly setHeader: HeaderSink = (name, value, append) => {
    const res = this.res;
    if (!append) res.setHeader(name, value);
    else if (name === 'set-cookie') appendSetCookie(res, value);
    else {
      const existing = res.getHeader(name);
      res.setHeader(name, existing === undefined ? value : `${String(existing)}, ${value}`);
    }
  };
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
  try {
    writeBack.exchange.writeBack(writeBack.setHeader);
  } catch (error) {
    // Never break the response over the session: it only loses this response's token.
    trace.getActiveSpan()?.recordException(error instanceof Error ? error : String(error));
  }
  return (writeBack.previousWriteHead as (...args: unknown[]) => ServerResponse).call(
    this,
    statusCode,
    reason,
    headers,
  );
}

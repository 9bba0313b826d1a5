import { configError, ErrorCode, invalidInput, isCausewayError } from '../errors.js';
import { knownOptions } from '../options.js';
import { assertResource, type FenceGuard, parseFencingToken } from './token.js';

/** Default request header that carries the caller's fencing token (a decimal string). */
export const DEFAULT_FENCING_TOKEN_HEADER = 'causeway-fencing-token';

/** What `fenceGuard` puts on `req.fencing` for the handler. */
export interface FencingContext {
  readonly resource: string;
  readonly token: bigint;
}

/** The part of an Express (4 or 5) request the guard uses; `fencing` is set on success. */
export interface FencedRequest {
  headers: Record<string, string | string[] | undefined>;
  fencing?: FencingContext;
}

/** The part of an Express response the guard uses to answer 400 and 409. */
export interface FenceGuardResponse {
  status(code: number): { json(body: unknown): unknown };
}

export interface FenceGuardOptions<Req extends FencedRequest = FencedRequest> {
  /** The guard that checks tokens (memory, PostgreSQL or Redis); called without options. */
  guard: FenceGuard<never>;
  /** The fenced resource: fixed, or chosen per request (a throw of `INVALID_INPUT` is a 400). */
  resource: string | ((req: Req) => string);
  /** Request header with the token. Default: `causeway-fencing-token`. */
  header?: string;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/**
 * Express middleware for endpoints only the current lease holder may call. It reads the
 * fencing token from a header, checks it with `guard` (which records it, so every older token
 * is refused from then on), and puts `{ resource, token }` on `req.fencing`. A missing or
 * malformed token is answered with 400 and `{ code: 'INVALID_INPUT', message }`, a stale one
 * with 409 and `{ code: 'STALE_FENCING_TOKEN', message }`; other errors go to `next`.
 *
 * The check commits on its own: to make the handler's write atomic with it, guard the write
 * itself too (`PgFenceGuard.write`, `RedisFenceGuard.setIfCurrent`) with `req.fencing.token`.
 */
export function fenceGuard<Req extends FencedRequest = FencedRequest>(
  options: FenceGuardOptions<Req>,
): (req: Req, res: FenceGuardResponse, next: (error?: unknown) => void) => void {
  const {
    guard,
    resource,
    header = DEFAULT_FENCING_TOKEN_HEADER,
  } = knownOptions(options, 'fenceGuard', ['guard', 'resource', 'header']);
  if (typeof guard?.check !== 'function') {
    throw configError('fenceGuard: guard must be a FenceGuard (with check)');
  }
  if (typeof resource === 'string') assertResourceOption(resource);
  else if (typeof resource !== 'function') {
    throw configError('fenceGuard: resource must be a string or a function of the request');
  }
  const headerName = typeof header === 'string' ? header.toLowerCase() : '';
  if (!HEADER_NAME.test(headerName)) {
    throw configError('fenceGuard: header must be a valid HTTP header name');
  }

  const run = async (req: Req): Promise<void> => {
    const raw = req.headers[headerName];
    if (typeof raw !== 'string') {
      throw invalidInput(`Send one fencing token in the ${headerName} header`);
    }
    const token = parseFencingToken(raw);
    const name = typeof resource === 'string' ? resource : resource(req);
    assertResource(name);
    await guard.check(name, token);
    req.fencing = { resource: name, token };
  };

  return (req, res, next) => {
    run(req).then(
      () => next(),
      (error: unknown) => {
        if (
          isCausewayError(error, ErrorCode.INVALID_INPUT) ||
          isCausewayError(error, ErrorCode.STALE_FENCING_TOKEN)
        ) {
          res.status(error.httpStatus).json({ code: error.code, message: error.message });
        } else {
          next(error);
        }
      },
    );
  };
}

function assertResourceOption(resource: string): void {
  try {
    assertResource(resource);
  } catch (error) {
    throw configError(`fenceGuard: ${(error as Error).message}`);
  }
}

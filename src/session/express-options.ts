import type { IncomingMessage } from 'node:http';
import { configError } from '../errors.js';
import { booleanOption, knownOptions, oneOfOption } from '../options.js';
import { ROUTE_HEADER, SESSION_HEADER } from './express-http.js';
import { type ConsistencyLevel, validateLevel } from './level.js';
import type { ReplicaSet } from './replica-set.js';
import { type NoCaughtUpPolicy, Router } from './router.js';
import type { SessionStore } from './session-store.js';
import { SessionTokens } from './token.js';

/**
 * Options of `consistency()` and of every framework adapter; `Req` is what `userKey` is given
 * (Node's request for Express and Nest, Fastify's request, Koa's and Hono's context, a Fetch
 * `Request`).
 */
export interface ConsistencyOptions<Req = IncomingMessage> {
  /** HMAC secret(s), each >= 32 characters; with an array the first signs, all verify. Required. */
  secret: string | readonly string[];
  /**
   * The topology, for `req.consistency.read()`, for `write()` without a position, and to refuse
   * tokens of another cluster (their stream). Default: `router.replicaSet` if a router is given.
   */
  replicaSet?: ReplicaSet;
  /**
   * The replica sets of the other clusters this service's sessions use (one per replicated pool
   * besides `replicaSet`'s): tokens with floors on their streams are then not of another cluster.
   * A token naming a stream none of the replica sets has is refused. Default: none (a token is of
   * another cluster when it names floors, none of them on `replicaSet`'s stream).
   */
  otherReplicaSets?: readonly ReplicaSet[];
  /** The router for `req.consistency.read()`. Default: one built from `replicaSet` and the options below. */
  router?: Router;
  /** Level of every request unless a route overrides it. Default `'read-your-writes'`. */
  level?: ConsistencyLevel;
  /** For the router built here (see `RouterOptions`; not with `router`). Default `'leader'`. */
  onNoCaughtUp?: NoCaughtUpPolicy;
  /** For the router built here (see `RouterOptions`; not with `router`). Default 500 ms. */
  waitTimeoutMs?: number;
  /**
   * A token that is forged, truncated, expired, oversized, of another version or cluster:
   * `'fresh'` (default) starts a fresh session (and clears the cookie); `'reject'` answers
   * HTTP 400 `{ error: { code: 'INVALID_SESSION_TOKEN', reason } }`. Both count it in
   * `causeway.session.invalid_tokens` and add a span event.
   */
  onInvalidToken?: 'fresh' | 'reject';
  /** Token and cookie lifetime (sliding). Default 24 hours (see `SessionTokensOptions.ttlMs`). */
  ttlMs?: number;
  /**
   * Cookie `Secure` attribute: `true`, `false`, or `'auto'` (default): set when the request came
   * over TLS (Express's `req.secure`, which honours `trust proxy`).
   */
  secureCookie?: boolean | 'auto';
  /** Cookie `Domain` attribute. Default: none (host-only cookie). */
  cookieDomain?: string;
  /** Adds the `causeway-route` debug header listing each read's target and reason. Default false. */
  routeHeader?: boolean;
  /**
   * Adds `causeway-session` (and `causeway-route` with `routeHeader`) to
   * `Access-Control-Expose-Headers` on responses carrying it, so that a cross-origin front end
   * (`causeway/client`) can read the token. Default false (same-origin clients need nothing).
   */
  exposeHeader?: boolean;
  /**
   * Keeps session state on the server by `userKey`, so read-your-writes follows a user across
   * devices and cookie-less clients: read before the request's first routed read (merged into
   * its session), merged back (floors forward only) when the response is written, if the request
   * moved its write floor or the user became known during it. If the store fails, that request's
   * floor-based reads go to the leader. Default: none (the token alone carries state).
   */
  store?: SessionStore;
  /**
   * The user key for `store` (a user, API client or runner id); undefined skips the store. It is
   * evaluated when needed: at the request's first routed read and again when the response is
   * written, so authentication that runs after `consistency()` (per route) is seen. Login and
   * signup handlers attach the user with `setUserKey(id)` instead.
   */
  userKey?: (req: Req) => string | undefined;
}

export interface ResolvedOptions {
  readonly tokens: SessionTokens;
  readonly router: Router | undefined;
  readonly replicaSet: ReplicaSet | undefined;
  /** The streams a token may name (`VerifyOptions.stream`); undefined while one is unknown. */
  readonly knownStreams: () => string | readonly string[] | undefined;
  readonly level: ConsistencyLevel;
  readonly reject: boolean;
  readonly secureCookie: boolean | 'auto';
  readonly cookieTail: string;
  readonly clearCookie: string;
  readonly routeHeader: boolean;
  readonly exposeHeader: string | undefined;
  readonly store: SessionStore | undefined;
  readonly userKey: ((req: never) => string | undefined) | undefined;
}

const CONSISTENCY_OPTION_KEYS = [
  'secret',
  'replicaSet',
  'otherReplicaSets',
  'router',
  'level',
  'onNoCaughtUp',
  'waitTimeoutMs',
  'onInvalidToken',
  'ttlMs',
  'secureCookie',
  'cookieDomain',
  'routeHeader',
  'exposeHeader',
  'store',
  'userKey',
] as const satisfies readonly (keyof ConsistencyOptions)[];

export function resolveOptions<Req>(options: ConsistencyOptions<Req>): ResolvedOptions {
  knownOptions(options, 'consistency', CONSISTENCY_OPTION_KEYS);
  const tokens = new SessionTokens(
    options.ttlMs === undefined
      ? { secret: options.secret }
      : { secret: options.secret, ttlMs: options.ttlMs },
  );
  const level = validateLevel(options.level ?? 'read-your-writes', 'level');
  const replicaSet = options.replicaSet ?? options.router?.replicaSet;
  if (
    options.router !== undefined &&
    (options.onNoCaughtUp !== undefined || options.waitTimeoutMs !== undefined)
  ) {
    throw configError(
      'consistency: onNoCaughtUp and waitTimeoutMs configure the router built here: with `router`, set them on that router',
    );
  }
  let router = options.router;
  if (router === undefined && replicaSet !== undefined) {
    router = new Router({
      replicaSet,
      level,
      ...(options.onNoCaughtUp === undefined ? {} : { onNoCaughtUp: options.onNoCaughtUp }),
      ...(options.waitTimeoutMs === undefined ? {} : { waitTimeoutMs: options.waitTimeoutMs }),
    });
  }
  const onInvalidToken = oneOfOption(
    'consistency',
    'onInvalidToken',
    options.onInvalidToken,
    ['fresh', 'reject'],
    'fresh',
  );
  const secureCookie = options.secureCookie ?? 'auto';
  if (secureCookie !== true && secureCookie !== false && secureCookie !== 'auto') {
    throw configError("consistency: secureCookie must be true, false or 'auto'", { secureCookie });
  }
  const domain = options.cookieDomain;
  if (domain !== undefined && (typeof domain !== 'string' || !/^[A-Za-z0-9.-]+$/.test(domain))) {
    throw configError('consistency: cookieDomain must be a host name', { cookieDomain: domain });
  }
  const common = `; Path=/${domain === undefined ? '' : `; Domain=${domain}`}; HttpOnly; SameSite=Lax`;
  if (options.store !== undefined && typeof options.userKey !== 'function') {
    throw configError(
      'consistency: userKey must be a function (req) => string | undefined with a store',
    );
  }
  const others = options.otherReplicaSets ?? [];
  if (!Array.isArray(others) || others.some((set) => typeof set?.snapshot !== 'function')) {
    throw configError('consistency: otherReplicaSets must be an array of replica sets');
  }
  const streamOf = (set: ReplicaSet) => set.snapshot().leader.position?.stream;
  const knownStreams = (): string | readonly string[] | undefined => {
    if (replicaSet === undefined) return undefined;
    if (others.length === 0) return streamOf(replicaSet);
    const streams = [replicaSet, ...others].map(streamOf);
    return streams.includes(undefined) ? undefined : (streams as string[]);
  };
  const routeHeader = booleanOption('consistency', 'routeHeader', options.routeHeader, false);
  const exposeHeader = booleanOption('consistency', 'exposeHeader', options.exposeHeader, false);
  return {
    tokens,
    router,
    replicaSet,
    knownStreams,
    level,
    reject: onInvalidToken === 'reject',
    secureCookie,
    cookieTail: `; Max-Age=${Math.floor(tokens.ttlMs / 1000)}${common}`,
    clearCookie: `${SESSION_HEADER}=; Max-Age=0${common}`,
    routeHeader,
    exposeHeader: exposeHeader
      ? routeHeader
        ? `${SESSION_HEADER}, ${ROUTE_HEADER}`
        : SESSION_HEADER
      : undefined,
    store: options.store,
    userKey: options.store === undefined ? undefined : options.userKey,
  };
}

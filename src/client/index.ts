// `causeway/client`: for clients that keep no cookies (SPAs on another origin, mobile apps, Node
// services): keeps the latest session token per origin and sends it back. No dependencies and no
// Node built-ins, so it bundles for browsers as is.
import { configError } from '../errors.js';
import { functionOption, knownOptions, stringOption } from '../options.js';

/** The header that carries the session token both ways. */
export const SESSION_HEADER = 'causeway-session';

/** Web Storage's shape (`sessionStorage`, `localStorage`), or anything with the same two methods. */
export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Where a client keeps the latest token of each origin. */
export interface TokenJar {
  /** The token last received from `origin`, if any. */
  get(origin: string): string | undefined;
  /** Keeps `token` as `origin`'s latest. */
  set(origin: string, token: string): void;
}

export interface TokenJarOptions {
  /** Where tokens are kept. Default: memory (lost with the page or process). */
  storage?: TokenStorage;
  /** Prefix of the storage keys (one key per origin). Default `'causeway-session:'`. */
  keyPrefix?: string;
}

/** A token jar in memory, or in `storage` (e.g. `sessionStorage`: one tab's session). */
export function createTokenJar(options: TokenJarOptions = {}): TokenJar {
  const { storage } = knownOptions(options, 'createTokenJar', ['storage', 'keyPrefix']);
  const keyPrefix = stringOption(
    'createTokenJar',
    'keyPrefix',
    options.keyPrefix,
    'causeway-session:',
    true,
  );
  if (
    storage !== undefined &&
    (typeof storage?.getItem !== 'function' || typeof storage.setItem !== 'function')
  ) {
    throw configError('createTokenJar: storage must have getItem and setItem (Web Storage)');
  }
  if (storage === undefined) {
    const tokens = new Map<string, string>();
    return {
      get: (origin) => tokens.get(origin),
      set: (origin, token) => tokens.set(origin, token),
    };
  }
  return {
    get: (origin) => storage.getItem(keyPrefix + origin) ?? undefined,
    set: (origin, token) => storage.setItem(keyPrefix + origin, token),
  };
}

/** `jar` when it is one, a jar in memory when undefined, else `CONFIG`. */
function checkJar(owner: string, jar: TokenJar | undefined): TokenJar {
  if (jar === undefined) return createTokenJar();
  if (typeof jar?.get !== 'function' || typeof jar.set !== 'function') {
    throw configError(`${owner}: jar must be a token jar (get and set)`);
  }
  return jar;
}

/** The origin of `url` (relative URLs against the page's location), '' when it has none. */
function originOf(url: string, base?: string): string {
  try {
    const page = (globalThis as { location?: { href?: string } }).location?.href;
    const baseUrl = base === undefined ? page : new URL(base, page).href;
    return new URL(url, baseUrl).origin;
  } catch {
    return '';
  }
}

type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface SessionFetchOptions {
  /** The tokens (shared with an axios interceptor, say). Default: a jar in memory. */
  jar?: TokenJar;
  /** The fetch to wrap. Default: the global `fetch`. */
  fetch?: FetchLike;
}

/**
 * `fetch` that sends each origin its latest `causeway-session` token and keeps the one each
 * response returns: `const api = sessionFetch(); await api('/profile', { method: 'POST' })`.
 * A `causeway-session` header the caller sets wins. Cross-origin servers must expose the header
 * (`consistency({ exposeHeader: true })`).
 */
export function sessionFetch(options: SessionFetchOptions = {}): FetchLike {
  knownOptions(options, 'sessionFetch', ['jar', 'fetch']);
  const jar = checkJar('sessionFetch', options.jar);
  const inner = functionOption<FetchLike>('sessionFetch: fetch', options.fetch, (input, init) =>
    globalThis.fetch(input, init),
  );
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const origin = originOf(url);
    const token = jar.get(origin);
    let sent = init;
    if (token !== undefined) {
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
      if (!headers.has(SESSION_HEADER)) headers.set(SESSION_HEADER, token);
      sent = { ...init, headers };
    }
    const response = await inner(input, sent);
    const received = response.headers.get(SESSION_HEADER);
    if (received !== null && received !== '') jar.set(origin, received);
    return response;
  };
}

/** The part of an axios request config the interceptor uses. */
export interface AxiosRequestConfigLike {
  url?: string;
  baseURL?: string;
  headers?: unknown;
}

/** The part of an axios response the interceptor uses. */
export interface AxiosResponseLike {
  headers?: unknown;
  config?: AxiosRequestConfigLike;
}

/**
 * The part of an axios instance the interceptor uses (axios 1.x fits it). Its callbacks take
 * `any` because axios types them with its own config and response types, which a structural
 * type cannot name without depending on axios.
 */
export interface AxiosLike {
  interceptors: {
    // biome-ignore lint/suspicious/noExplicitAny: see above
    request: { use(onFulfilled: (config: any) => any): number; eject(id: number): void };
    // biome-ignore lint/suspicious/noExplicitAny: see above
    response: { use(onFulfilled: (response: any) => any): number; eject(id: number): void };
  };
}

/**
 * Installs request and response interceptors on an axios instance that do what `sessionFetch`
 * does; returns a function removing them. `jar` default: a jar in memory.
 */
export function useSessionTokens(axios: AxiosLike, options: { jar?: TokenJar } = {}): () => void {
  knownOptions(options, 'useSessionTokens', ['jar']);
  const jar = checkJar('useSessionTokens', options.jar);
  const onRequest = (config: AxiosRequestConfigLike): AxiosRequestConfigLike => {
    const token = jar.get(originOf(config.url ?? '', config.baseURL));
    if (token === undefined) return config;
    const headers = (config.headers ?? {}) as Record<string, unknown> & {
      set?: (name: string, value: string) => unknown;
      has?: (name: string) => boolean;
    };
    if (headers.has?.(SESSION_HEADER) ?? headers[SESSION_HEADER] !== undefined) return config;
    if (typeof headers.set === 'function') headers.set(SESSION_HEADER, token);
    else headers[SESSION_HEADER] = token;
    config.headers = headers;
    return config;
  };
  const onResponse = (response: AxiosResponseLike): AxiosResponseLike => {
    const headers = response.headers as
      | (Record<string, unknown> & { get?: (name: string) => unknown })
      | undefined;
    const token = headers?.[SESSION_HEADER];
    if (typeof token === 'string' && token !== '') {
      const config = response.config ?? {};
      jar.set(originOf(config.url ?? '', config.baseURL), token);
    }
    return response;
  };
  const requestId = axios.interceptors.request.use(onRequest);
  const responseId = axios.interceptors.response.use(onResponse);
  return () => {
    axios.interceptors.request.eject(requestId);
    axios.interceptors.response.eject(responseId);
  };
}

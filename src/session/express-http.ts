import type { ServerResponse } from 'node:http';
import { levelName } from './level.js';
import type { RouteDecision } from './route-decision.js';

// The HTTP side of the consistency middleware: header and cookie names, reading a token from a
// request, writing cookies.

/** Header (request and response) and cookie that carry the session token. */
export const SESSION_HEADER = 'causeway-session';
/** Debug response header listing each routed read of the request (with `routeHeader: true`). */
export const ROUTE_HEADER = 'causeway-route';

/** The `Set-Cookie` value carrying `token`. */
export function sessionCookie(token: string, cookieTail: string, secure: boolean): string {
  return `${SESSION_HEADER}=${token}${cookieTail}${secure ? '; Secure' : ''}`;
}

export function formatRoute(decision: RouteDecision): string {
  return `${decision.target};node=${decision.node};reason=${decision.reason};level=${levelName(decision.level)}`;
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : value.join(',');
  return text === '' ? undefined : text;
}

/** The value of cookie `name` in a `Cookie` header (no cookie-parser needed). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let at = 0;
  while (at < header.length) {
    const end = header.indexOf(';', at);
    const stop = end === -1 ? header.length : end;
    const eq = header.indexOf('=', at);
    if (eq !== -1 && eq < stop && header.slice(at, eq).trim() === name) {
      let value = header.slice(eq + 1, stop).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
        value = value.slice(1, -1);
      return value === '' ? undefined : value;
    }
    at = stop + 1;
  }
  return undefined;
}

export function appendSetCookie(res: ServerResponse, cookie: string): void {
  const existing = res.getHeader('set-cookie');
  if (existing === undefined) res.setHeader('set-cookie', cookie);
  else if (Array.isArray(existing)) res.setHeader('set-cookie', [...existing, cookie]);
  else res.setHeader('set-cookie', [String(existing), cookie]);
}

// The simulated users of the sessions workload and their devices.
import { SESSION_HEADER } from '../../../src/express.js';
import type { Rng } from '../rng.js';

/** A device keeps the token the way a browser (cookie) or an API client (header) does. */
export class Device {
  token: string | undefined;
  constructor(
    readonly name: string,
    readonly useCookie: boolean,
  ) {}

  headers(user: string): Record<string, string> {
    const headers: Record<string, string> = { 'x-user': user };
    if (this.token === undefined) return headers;
    if (this.useCookie) headers['cookie'] = `${SESSION_HEADER}=${this.token}`;
    else headers[SESSION_HEADER] = this.token;
    return headers;
  }

  /** Keeps the token the response carries, if any (the middleware sends it only when it changed). */
  absorb(response: globalThis.Response): void {
    if (!this.useCookie) {
      const token = response.headers.get(SESSION_HEADER);
      if (token) this.token = token;
      return;
    }
    for (const cookie of response.headers.getSetCookie()) {
      const prefix = `${SESSION_HEADER}=`;
      if (!cookie.startsWith(prefix)) continue;
      const value = cookie.slice(prefix.length).split(';')[0] ?? '';
      this.token = value === '' ? undefined : value;
    }
  }
}

/** A simulated user: their devices, the keys only they write, and their own random stream. */
export interface User {
  readonly name: string;
  readonly devices: readonly Device[];
  readonly ownKeys: readonly string[];
  readonly rng: Rng;
  writes: number;
}

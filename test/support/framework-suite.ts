// One behaviour suite for every framework adapter: each adapter's test builds the same small app
// (a key-value store over MemoryReplicaSet) with its framework and drives it through that
// framework's own test utility (`send`), and these cases check what the adapter must keep.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../adapters/memory/replica-set.js';
import { MemorySessionStore } from '../../adapters/memory/session-store.js';
import { currentSession } from '../../src/session/context.js';
import type { RequestConsistency } from '../../src/session/exchange.js';
import type { ConsistencyOptions } from '../../src/session/express-options.js';
import type { SessionStore } from '../../src/session/session-store.js';

export const SUITE_SECRET = 'framework-suite-secret-of-32-chars!';

/** A response as the suite sees it. */
export interface Sent {
  readonly status: number;
  header(name: string): string | undefined;
  readonly setCookies: readonly string[];
  readonly body: Record<string, unknown>;
}

export type Send = (
  method: 'GET' | 'POST',
  path: string,
  headers?: Record<string, string>,
  body?: Record<string, unknown>,
) => Promise<Sent>;

/**
 * The options an adapter is built with, minus `userKey`: the adapter adds one reading the bearer
 * token (`bearerUser`) from its own request type, when `withUserKey` is set.
 */
export interface SuiteOptions {
  readonly options: Omit<ConsistencyOptions, 'userKey'>;
  readonly withUserKey: boolean;
  /**
   * Errors answered by the app's own error handler, in that framework's way (Express error
   * middleware, Fastify's setErrorHandler, an outer Koa middleware, Hono's onError, a Nest
   * exception filter) as a 500 `{ error: message }`; else by the framework's default handling.
   */
  readonly customErrors: boolean;
}

/** The body the apps' own error handlers answer with (`customErrors`). */
export function errorBody(error: unknown): { error: string } {
  return { error: error instanceof Error ? error.message : String(error) };
}

/** Builds the app on one framework; `close` releases it. */
export type BuildApp = (
  logic: AppLogic,
  suite: SuiteOptions,
) => Promise<{ send: Send; close(): Promise<void> }>;

/** A response body: its JSON object, else `{ text }` (error pages are often plain text or HTML). */
export function bodyOf(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) return parsed as Record<string, unknown>;
  } catch {}
  return { text };
}

/** `Authorization: Bearer <user>`'s user (the test apps' stand-in for real authentication). */
export function bearerUser(authorization: string | null | undefined): string | undefined {
  return authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
}

/** The handlers, framework-free: each adapter's routes call these with its `consistency`. */
export class AppLogic {
  constructor(readonly db: MemoryReplicaSet<string>) {}

  /** POST /items/:key { value } */
  async write(c: RequestConsistency, key: string, value: string) {
    await c.write(this.db.write(key, value));
    return { ok: true, sameSession: currentSession() === c.session };
  }

  /** GET /items/:key */
  async read(c: RequestConsistency, key: string) {
    const decision = await c.read();
    const { value, position } = this.db.read(decision.node, key);
    c.session.noteRead(position);
    return {
      value: value ?? null,
      target: decision.target,
      sameSession: currentSession() === c.session,
    };
  }

  /** POST /fail/:key { value }: writes, then throws (the framework's error handling answers). */
  async writeThenFail(c: RequestConsistency, key: string, value: string): Promise<never> {
    await this.write(c, key, value);
    throw new Error('the handler failed after its write');
  }

  /** POST /signup { user }: creates the user and attaches the session to it. */
  async signup(c: RequestConsistency, user: string) {
    c.setUserKey(user);
    return this.write(c, `user:${user}`, 'exists');
  }

  /** POST /login { user }: attaches the session to the user, then looks the user up. */
  async login(c: RequestConsistency, user: string) {
    c.setUserKey(user);
    return this.read(c, `user:${user}`);
  }
}

/** What sets an adapter apart in the suite. */
export interface AdapterTraits {
  /**
   * A handler's error goes to the host (the Fetch adapter rethrows it: Next.js, Bun or Deno
   * answer it, and no response of the adapter's can carry the token): `send` then rejects.
   */
  readonly errorsReachHost?: boolean;
}

/** The suite: `describeAdapter('Fastify', build)`. */
export function describeAdapter(name: string, build: BuildApp, traits: AdapterTraits = {}): void {
  describe(`${name} adapter`, () => {
    let db: MemoryReplicaSet<string>;
    let logic: AppLogic;
    const opened: { close(): Promise<void> }[] = [];
    beforeEach(() => {
      // Replicas apply writes only on catchUp(): a replica lagging as long as the test needs.
      db = new MemoryReplicaSet<string>({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
      logic = new AppLogic(db);
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((app) => app.close()));
      await db.close();
    });
    async function app(
      options: Partial<ConsistencyOptions> = {},
      withUserKey = false,
      customErrors = false,
    ): Promise<Send> {
      const built = await build(logic, {
        options: { secret: SUITE_SECRET, replicaSet: db, ...options },
        withUserKey,
        customErrors,
      });
      opened.push(built);
      return built.send;
    }

    it('reads your writes through the header: leader until the replica caught up', async () => {
      const send = await app();
      const written = await send('POST', '/items/a', {}, { value: 'v1' });
      expect(written.status).toBe(200);
      expect(written.body).toMatchObject({ ok: true, sameSession: true });
      const token = written.header('causeway-session');
      expect(token).toMatch(/^[A-Za-z0-9_-]+$/);

      const bare = await send('GET', '/items/a');
      expect(bare.body).toMatchObject({ value: null, target: 'replica' });
      const mine = await send('GET', '/items/a', { 'causeway-session': token! });
      expect(mine.body).toMatchObject({ value: 'v1', target: 'leader', sameSession: true });
      db.catchUp();
      const later = await send('GET', '/items/a', { 'causeway-session': token! });
      expect(later.body).toMatchObject({ value: 'v1', target: 'replica' });
    });

    it('round-trips the token through the cookie', async () => {
      const send = await app();
      const written = await send('POST', '/items/b', {}, { value: 'v2' });
      const cookie = written.setCookies.find((c) => c.startsWith('causeway-session='));
      expect(cookie).toMatch(/; HttpOnly; SameSite=Lax/);
      const pair = cookie!.split(';')[0]!;
      const mine = await send('GET', '/items/b', { cookie: `other=1; ${pair}` });
      expect(mine.body).toMatchObject({ value: 'v2', target: 'leader' });
    });

    it('a forged token starts a fresh session; with onInvalidToken reject it is a 400', async () => {
      const send = await app();
      const forged = await send('GET', '/items/c', { 'causeway-session': 'forged.token' });
      expect(forged.status).toBe(200);
      expect(forged.body).toMatchObject({ value: null, target: 'replica' });
      const strict = await app({ onInvalidToken: 'reject' });
      const rejected = await strict('GET', '/items/c', { 'causeway-session': 'x'.repeat(5000) });
      expect(rejected.status).toBe(400);
      expect(rejected.body).toMatchObject({ error: { code: 'INVALID_SESSION_TOKEN' } });
    });

    it.skipIf(traits.errorsReachHost).each([
      ['the default error handling', false],
      ["the app's own error handler", true],
    ])(
      'a handler that throws after writing, answered by %s: the response carries the token',
      async (_, customErrors) => {
        const send = await app({}, false, customErrors);
        const failed = await send('POST', '/fail/g', {}, { value: 'v-failed' });
        expect(failed.status).toBe(500);
        if (customErrors) {
          expect(failed.body).toEqual({ error: 'the handler failed after its write' });
        }
        const token = failed.header('causeway-session');
        expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(failed.setCookies.some((c) => c.startsWith(`causeway-session=${token}`))).toBe(true);
        const mine = await send('GET', '/items/g', { 'causeway-session': token! });
        expect(mine.body).toMatchObject({ value: 'v-failed', target: 'leader' });
      },
    );

    it.runIf(traits.errorsReachHost)(
      'a handler that throws: its error reaches the host unchanged',
      async () => {
        const send = await app();
        await expect(send('POST', '/fail/g', {}, { value: 'v-failed' })).rejects.toThrow(
          'the handler failed after its write',
        );
      },
    );

    it('exposes the token header to cross-origin clients when asked', async () => {
      const send = await app({ exposeHeader: true });
      const written = await send('POST', '/items/d', {}, { value: 'v' });
      expect(written.header('access-control-expose-headers')).toContain('causeway-session');
    });

    it('a client without cookies or tokens reads its writes across signup, login and later requests', async () => {
      const store = new MemorySessionStore();
      opened.push(store);
      const send = await app({ store }, true);
      // Signup and login know no user yet: the handler attaches it with setUserKey.
      const signup = await send('POST', '/signup', {}, { user: 'ann' });
      expect(signup.status).toBe(200);
      const login = await send('POST', '/login', {}, { user: 'ann' });
      expect(login.body).toMatchObject({ value: 'exists', target: 'leader' });
      // Later requests carry only the bearer token: userKey finds the user, the store her floor.
      const auth = { authorization: 'Bearer ann' };
      await send('POST', '/items/e', auth, { value: 'mine' });
      const read = await send('GET', '/items/e', auth);
      expect(read.body).toMatchObject({ value: 'mine', target: 'leader' });
      const someoneElse = await send('GET', '/items/e', { authorization: 'Bearer bob' });
      expect(someoneElse.body).toMatchObject({ value: null, target: 'replica' });
    });

    it('a failing session store sends reads to the leader, never fails the request', async () => {
      const broken: SessionStore = {
        get: () => Promise.reject(new Error('down')),
        set: () => Promise.reject(new Error('down')),
        close: async () => {},
      };
      const send = await app({ store: broken }, true);
      const read = await send('GET', '/items/f', { authorization: 'Bearer ann' });
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ target: 'leader' });
    });
  });
}

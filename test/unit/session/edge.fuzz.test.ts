/**
 * Session tokens from outside, fuzzed through the Express middleware (Express 4 and 5, real
 * HTTP via supertest) and the direct API: random, forged, re-signed, expired, other-cluster,
 * oversized and malformed tokens in the header and the cookie. Policy (`onInvalidToken`):
 * `'fresh'` answers 200 in a fresh session (and clears a bad cookie), `'reject'` answers 400
 * `INVALID_SESSION_TOKEN`; a token `SessionTokens.verify` accepts keeps its session. Never a 500,
 * never another error.
 */
import { createHmac } from 'node:crypto';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import express5, { type Express, type NextFunction, type Request, type Response } from 'express';
import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { isCausewayError } from '../../../src/errors.js';
import { consistency, consistencyOf, SESSION_HEADER } from '../../../src/express.js';
import type { SessionState } from '../../../src/session/context.js';
import { SessionTokens, TOKEN_VERSION } from '../../../src/session/token.js';
import { expectTypedError, junkArb } from '../../support/junk.js';

const express4 = createRequire(import.meta.url)('express4') as () => Express;
const SECRET = 'fuzz-secret-of-at-least-32-chars!';
const OTHER_SECRET = 'another-secret-of-at-least-32-chars';
const RUNS = 100;
const REASONS = [
  'oversized',
  'malformed',
  'unsupported-version',
  'bad-signature',
  'expired',
  'other-cluster',
];

const db = new MemoryReplicaSet<string>({ stream: 'cluster-a' });
const tokens = new SessionTokens({ secret: SECRET });
const otherSecret = new SessionTokens({ secret: OTHER_SECRET });

// ---------------------------------------------------------------------------------------------
// Tokens

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const base64urlChar = fc.constantFrom(...BASE64URL);

/** Characters Node's HTTP client lets through in a header value (Latin-1, no controls). */
const headerChar = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
  fc.constant('\t'),
);

const positionArb = (stream: string) =>
  fc.record({
    stream: fc.constant(stream),
    epoch: fc.nat(),
    lsn: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  });

const stateArb = (stream: string): fc.Arbitrary<SessionState> =>
  fc
    .record({
      id: fc.string({ minLength: 1, maxLength: 16 }),
      writeFloor: fc.option(positionArb(stream), { nil: undefined }),
      readFloor: fc.option(positionArb(stream), { nil: undefined }),
    })
    .map(({ id, writeFloor, readFloor }) => {
      // Both floors of a state share one history.
      const read = writeFloor && readFloor ? { ...writeFloor, lsn: readFloor.lsn } : readFloor;
      return {
        id,
        ...(writeFloor ? { writeFloor } : {}),
        ...(read ? { readFloor: read } : {}),
      };
    });

/** Byte strings of every length up to `max`, long ones as likely as short ones. */
const bytesArb = (max: number) =>
  fc.integer({ min: 0, max }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));

/** A payload signed with our secret: only a holder of the secret can make one. */
function signed(payload: Buffer): string {
  const mac = createHmac('sha256', SECRET).update(payload).digest();
  return Buffer.concat([payload, mac]).toString('base64url');
}

const validToken = stateArb('cluster-a').map((state) => tokens.issue(state));

const tokenArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: headerChar, maxLength: 200 }),
  fc.string({ unit: base64urlChar, minLength: 1000, maxLength: 3000 }),
  validToken,
  fc
    .tuple(validToken, fc.nat(), base64urlChar)
    .map(
      ([token, at, c]) =>
        token.slice(0, at % token.length) + c + token.slice((at % token.length) + 1),
    ),
  fc.tuple(validToken, fc.nat()).map(([token, cut]) => token.slice(0, cut % token.length)),
  fc
    .tuple(validToken, fc.string({ unit: base64urlChar, minLength: 1, maxLength: 8 }))
    .map(([token, tail]) => token + tail),
  fc.uint8Array({ minLength: 1, maxLength: 120 }).map((b) => Buffer.from(b).toString('base64url')),
  stateArb('cluster-a').map((state) => otherSecret.issue(state)),
  stateArb('cluster-a').map((state) => tokens.issue(state, Date.now() - 2 * tokens.ttlMs)),
  stateArb('cluster-b')
    .filter((state) => state.writeFloor !== undefined || state.readFloor !== undefined)
    .map((state) => tokens.issue(state)),
  fc
    .uint8Array({ minLength: 7, maxLength: 120 })
    .map((bytes) => signed(Buffer.from([TOKEN_VERSION, ...bytes.subarray(1)]))),
  fc.constantFrom('', ' ', '""', 'null', '%00', 'a,b', `${'A'.repeat(1024)}`),
);

/** What the middleware must make of `token` in a header: its state, or undefined (untrusted). */
function oracle(token: string): { present: boolean; state: SessionState | undefined } {
  // HTTP drops a header value's leading and trailing spaces and tabs.
  const seen = token.replace(/^[ \t]+|[ \t]+$/g, '');
  if (seen === '') return { present: false, state: undefined };
  try {
    return { present: true, state: tokens.verify(seen, { stream: 'cluster-a' }).state };
  } catch (error) {
    expectTypedError(error, ['INVALID_SESSION_TOKEN']);
    return { present: true, state: undefined };
  }
}

// ---------------------------------------------------------------------------------------------
// Apps

const servers: Server[] = [];

function serve(createApp: () => Express, onInvalidToken: 'fresh' | 'reject'): Server {
  const app = createApp();
  app.use(consistency({ secret: SECRET, replicaSet: db, onInvalidToken }));
  app.get('/session', (req: Request, res: Response) => {
    res.json({ id: consistencyOf(req).session.id });
  });
  app.post('/write', async (req: Request, res: Response) => {
    await consistencyOf(req).write(db.write('k', 'v'));
    res.json({ id: consistencyOf(req).session.id });
  });
  // Anything that reaches Express's error handling is a failure of this test.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ unexpected: String(error) });
  });
  const server = app.listen(0);
  servers.push(server);
  return server;
}

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await db.close();
});

function setCookies(response: request.Response): string[] {
  const header = response.headers['set-cookie'] as string[] | string | undefined;
  return header === undefined ? [] : Array.isArray(header) ? header : [header];
}

/** Checks one response against the policy for a token the oracle judged. */
function expectPolicy(
  response: request.Response,
  policy: 'fresh' | 'reject',
  judged: { present: boolean; state: SessionState | undefined },
  fromCookie: boolean,
): void {
  expect(response.status, JSON.stringify(response.body)).not.toBe(500);
  if (judged.state !== undefined) {
    expect(response.status).toBe(200);
    expect(response.body.id).toBe(judged.state.id);
    return;
  }
  if (!judged.present) {
    expect(response.status).toBe(200);
    return;
  }
  if (policy === 'reject') {
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('INVALID_SESSION_TOKEN');
    expect(REASONS).toContain(response.body.error.reason);
    return;
  }
  expect(response.status).toBe(200);
  expect(typeof response.body.id).toBe('string');
  if (fromCookie && response.headers[SESSION_HEADER] === undefined) {
    // The bad cookie is cleared (unless a new token replaces it).
    expect(setCookies(response).some((c) => c.startsWith(`${SESSION_HEADER}=; Max-Age=0`))).toBe(
      true,
    );
  }
}

describe.each([
  ['Express 5', express5 as unknown as () => Express],
  ['Express 4', express4],
])('consistency() on %s with hostile tokens', (_name, createApp) => {
  let fresh: Server;
  let reject: Server;
  beforeAll(() => {
    fresh = serve(createApp, 'fresh');
    reject = serve(createApp, 'reject');
  });

  it(`a token in the header: kept when valid, else fresh or 400 (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(tokenArb, fc.boolean(), fc.boolean(), async (token, strict, write) => {
        const policy = strict ? 'reject' : 'fresh';
        const server = strict ? reject : fresh;
        const call = write ? request(server).post('/write') : request(server).get('/session');
        const response = await call.set(SESSION_HEADER, token);
        const judged = oracle(token);
        expectPolicy(response, policy, judged, false);
        const reissued = response.headers[SESSION_HEADER] as string | undefined;
        if (reissued !== undefined) expect(tokens.verify(reissued).state.id).toBe(response.body.id);
        if (write && judged.state === undefined && response.status === 200) {
          // A fresh session that wrote has a floor now: its token comes back.
          expect(reissued).toBeDefined();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it(`a token in the cookie, alone or among others (${RUNS} runs)`, async () => {
    const cookiePart = fc.oneof(
      tokenArb
        .filter((t) => !/[;,"\\\s]/.test(t))
        .map((t) => ({ text: `${SESSION_HEADER}=${t}`, token: t })),
      fc
        .tuple(
          fc.constantFrom('other', 'x', ` ${SESSION_HEADER}`),
          fc.string({ unit: headerChar, maxLength: 40 }),
        )
        .map(([name, value]) => ({ text: `${name}=${value}`, token: undefined })),
      fc.string({ unit: headerChar, maxLength: 80 }).map((text) => ({ text, token: undefined })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(cookiePart, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (parts, strict) => {
          const server = strict ? reject : fresh;
          const cookie = parts.map((p) => p.text).join('; ');
          const response = await request(server).get('/session').set('Cookie', cookie);
          expect(response.status, JSON.stringify(response.body)).not.toBe(500);
          const only = parts.length === 1 ? parts[0]!.token : undefined;
          if (only !== undefined && !/^\s|\s$/.test(only)) {
            expectPolicy(response, strict ? 'reject' : 'fresh', oracle(only), true);
          } else if (response.status === 400) {
            expect(response.body.error.code).toBe('INVALID_SESSION_TOKEN');
          } else {
            expect(response.status).toBe(200);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('the direct API with hostile tokens and jobs', () => {
  const freshHandler = consistency({ secret: SECRET, replicaSet: db });
  const rejectHandler = consistency({ secret: SECRET, replicaSet: db, onInvalidToken: 'reject' });

  it(`run, verify and withJobSession: the token's session, a fresh one, or INVALID_SESSION_TOKEN (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(tokenArb, junkArb), async (token) => {
        const judged = typeof token === 'string' ? oracle(token) : undefined;
        const trusted = judged?.state !== undefined && token === (token as string).trim();
        for (const handler of [freshHandler, rejectHandler]) {
          try {
            const { result } = await handler.run(token as string, (session) => session.id);
            if (trusted) expect(result).toBe(judged!.state!.id);
          } catch (error) {
            expect(handler).toBe(rejectHandler);
            expectTypedError(error, ['INVALID_SESSION_TOKEN']);
          }
          try {
            expect(handler.verify(token as string).id).toBe(judged!.state!.id);
          } catch (error) {
            expectTypedError(error, ['INVALID_SESSION_TOKEN']);
          }
          const jobId = handler.withJobSession(
            { causewaySession: token as string },
            (session) => session.id,
          );
          if (trusted) expect(jobId).toBe(judged!.state!.id);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it(`a job payload of any shape starts a fresh session, never throws (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(junkArb, (job) => {
        expect(typeof freshHandler.withJobSession(job as never, (s) => s.id)).toBe('string');
      }),
      { numRuns: RUNS },
    );
  });

  it(`any payload signed with the secret: refused, or a state that re-issues (${RUNS} runs)`, () => {
    // Near-valid layouts (see token.ts) with random lengths and bytes, and plain noise.
    const u32 = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    const structured = fc
      .record({
        flags: fc.nat(4),
        id: bytesArb(100),
        idLengthSkew: fc.constantFrom(0, 0, 0, -1, 1),
        stream: bytesArb(140),
        epoch: fc.nat(),
        floors: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        floorBytesSkew: fc.constantFrom(0, 0, 0, -1, 1),
      })
      .map(({ flags, id, idLengthSkew, stream, epoch, floors, floorBytesSkew }) => {
        const floorBytes = 8 * ((flags & 1) + ((flags >> 1) & 1)) + floorBytesSkew;
        return [
          flags,
          ...u32(Math.floor(Date.now() / 1000) + 3600),
          Math.max(0, Math.min(255, id.length + idLengthSkew)),
          ...id,
          ...(flags === 0 ? [] : [stream.length & 0xff, ...stream, ...u32(epoch)]),
          ...floors.subarray(0, Math.max(0, floorBytes)),
        ];
      });
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ minLength: 6, maxLength: 160 }), structured),
        (bytes) => {
          const token = signed(Buffer.from([TOKEN_VERSION, ...bytes]));
          let state: SessionState;
          try {
            state = tokens.verify(token).state;
          } catch (error) {
            expect(isCausewayError(error, 'INVALID_SESSION_TOKEN'), String(error)).toBe(true);
            return;
          }
          expect(tokens.verify(tokens.issue(state)).state).toEqual(state);
        },
      ),
      { numRuns: 500 },
    );
  });
});

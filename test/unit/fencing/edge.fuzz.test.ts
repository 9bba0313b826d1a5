/**
 * Fencing input from outside, fuzzed: the fencing-token header through `fenceGuard` (Express 4
 * and 5, real HTTP) and resource names from the URL, then the memory lease manager and fence
 * guard called with any resource, token and options. A model of the guard (the newest token per
 * resource) predicts every answer, so a rejected request that changed the guard fails a later
 * prediction; 400 for malformed input, 409 for a stale token, never 500.
 */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import express5, { type Express, type NextFunction, type Request, type Response } from 'express';
import fc from 'fast-check';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryFenceGuard, MemoryLeaseManager } from '../../../adapters/memory/index.js';
import {
  DEFAULT_FENCING_TOKEN_HEADER,
  type FencedRequest,
  fenceGuard,
} from '../../../src/express.js';
import { MAX_FENCING_TOKEN, MAX_RESOURCE_LENGTH, parseFencingToken } from '../../../src/index.js';
import {
  assertJunkAcquireKeepsHolder,
  FenceModel,
  storableResource,
} from '../../support/fence-fuzz.js';
import { expectTypedError, junkArb } from '../../support/junk.js';

const express4 = createRequire(import.meta.url)('express4') as () => Express;
const RUNS = 100;

/** Characters Node's HTTP client lets through in a header value (Latin-1, no controls). */
const headerText = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
  ),
  maxLength: 40,
});

const tokenTextArb: fc.Arbitrary<string | string[]> = fc.oneof(
  fc.bigInt({ min: 0n, max: 400n }).map(String),
  fc.bigInt({ min: 0n, max: MAX_FENCING_TOKEN + 10n }).map(String),
  fc.constantFrom('', '-1', '01', '1e3', '0x10', ' 150', '150 ', '+150', '1.0', '9'.repeat(30)),
  headerText,
  fc.array(fc.bigInt({ min: 0n, max: 400n }).map(String), { minLength: 2, maxLength: 3 }),
);

/** What the guard makes of a header value (after HTTP trims it): a token, or undefined. */
function parsedHeader(value: string | string[]): bigint | undefined {
  if (Array.isArray(value)) return undefined; // two headers arrive as one "a, b"
  try {
    return parseFencingToken(value.replace(/^[ \t]+|[ \t]+$/g, ''));
  } catch (error) {
    expectTypedError(error, ['INVALID_INPUT']);
    return undefined;
  }
}

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

describe.each([
  ['Express 5', express5 as unknown as () => Express],
  ['Express 4', express4],
])('fenceGuard on %s with hostile headers and resources', (_name, createApp) => {
  it(`answers as a model of the guard predicts: 200, 409 or 400, never 500 (${RUNS} runs)`, async () => {
    const guard = new MemoryFenceGuard();
    const app = createApp();
    app.post(
      '/fenced/:shard',
      fenceGuard<FencedRequest & { params: Record<string, string> }>({
        guard,
        resource: (req) => req.params['shard'] as string,
      }),
      (req: Request, res: Response) => {
        res.json({ token: (req as unknown as FencedRequest).fencing?.token.toString() });
      },
    );
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      res.status(500).json({ unexpected: String(error) });
    });
    const server = app.listen(0);
    servers.push(server);
    const newest = new Map<string, bigint>();

    const shardArb = fc.oneof(
      fc.constantFrom('a', 'b', 'a\u0000b'),
      fc.string({ minLength: 1, maxLength: 20 }),
      fc.string({ minLength: MAX_RESOURCE_LENGTH - 2, maxLength: MAX_RESOURCE_LENGTH + 2 }),
    );
    await fc.assert(
      fc.asyncProperty(shardArb, tokenTextArb, async (shard, header) => {
        const response = await request(server)
          .post(`/fenced/${encodeURIComponent(shard)}`)
          .set(DEFAULT_FENCING_TOKEN_HEADER, header as string);
        expect(response.status, JSON.stringify(response.body)).not.toBe(500);
        const token = parsedHeader(header);
        const resourceOk = storableResource(shard);
        if (token === undefined || !resourceOk) {
          expect(response.status).toBe(400);
          expect(response.body.code).toBe('INVALID_INPUT');
          return;
        }
        const current = newest.get(shard);
        if (current !== undefined && token < current) {
          expect(response.status).toBe(409);
          expect(response.body.code).toBe('STALE_FENCING_TOKEN');
          return;
        }
        expect(response.status).toBe(200);
        expect(response.body.token).toBe(token.toString());
        newest.set(shard, token);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('memory lease manager and fence guard with hostile arguments', () => {
  // NUL and lone surrogates: PostgreSQL refuses the one, and both stores turn the other into
  // U+FFFD, so 'a\uD800' and 'a\uDFFF' would share a fence.
  const resourceArb = fc.oneof(
    fc.constantFrom('r1', 'r2', 'a\u0000b', 'a\uD800', 'a\uDFFF'),
    junkArb,
  );
  const tokenArb = fc.oneof(fc.bigInt({ min: -5n, max: 50n }), junkArb);

  it(`the fence guard: passes, STALE_FENCING_TOKEN or INVALID_INPUT, as its model says (${RUNS} runs)`, async () => {
    const guard = new MemoryFenceGuard();
    const model = new FenceModel();
    await fc.assert(
      fc.asyncProperty(resourceArb, tokenArb, fc.boolean(), async (resource, token, viaWrite) => {
        let ran = false;
        const attempt = viaWrite
          ? guard.write(resource as string, token as bigint, () => {
              ran = true;
            })
          : guard.check(resource as string, token as bigint);
        try {
          await attempt;
        } catch (error) {
          expect(ran).toBe(false);
          return model.refused(resource, token, error);
        }
        model.passed(resource, token);
      }),
      { numRuns: RUNS },
    );
  });

  it(`the lease manager: a junk acquire is INVALID_INPUT and takes nothing from the holder (${RUNS} runs)`, async () => {
    let now = 1_000_000;
    const leases = new MemoryLeaseManager({ now: () => now });
    await assertJunkAcquireKeepsHolder(leases, {
      resourceArb,
      numRuns: RUNS,
      afterAcquire: () => {
        now += 1;
      },
    });
  });
});

import { createRequire } from 'node:module';
import express5 from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryFenceGuard } from '../../../adapters/memory/index.js';
import {
  DEFAULT_FENCING_TOKEN_HEADER,
  type FencedRequest,
  fenceGuard,
} from '../../../src/express.js';
import type { FenceGuard } from '../../../src/fencing/token.js';

type AppFactory = () => import('express').Express;

// The `express4` alias (Express 4) ships no types; the same structural API is all we use.
const express4 = createRequire(import.meta.url)('express4') as AppFactory;

describe.each([
  ['Express 5', express5 as unknown as AppFactory],
  ['Express 4', express4],
])('fenceGuard on %s', (_name, createApp) => {
  function app(
    guard: FenceGuard<never>,
    options: { resource?: string | ((req: FencedRequest) => string); header?: string } = {},
  ) {
    const server = createApp();
    server.post(
      '/leader-only/:shard',
      fenceGuard({ guard, resource: options.resource ?? 'leader', header: options.header }),
      (req, res) => {
        const { fencing } = req as unknown as FencedRequest;
        res.json({ resource: fencing?.resource, token: fencing?.token.toString() });
      },
    );
    return server;
  }

  it('lets a current token through and hands it to the handler', async () => {
    const guard = new MemoryFenceGuard();
    const response = await request(app(guard))
      .post('/leader-only/1')
      .set(DEFAULT_FENCING_TOKEN_HEADER, '7');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ resource: 'leader', token: '7' });
  });

  it('answers 409 STALE_FENCING_TOKEN for an older token, and the guard remembers the newer one', async () => {
    const guard = new MemoryFenceGuard();
    const server = app(guard);
    await request(server).post('/leader-only/1').set('causeway-fencing-token', '8').expect(200);
    const stale = await request(server).post('/leader-only/1').set('causeway-fencing-token', '7');
    expect(stale.status).toBe(409);
    expect(stale.body.code).toBe('STALE_FENCING_TOKEN');
    await expect(guard.check('leader', 7n)).rejects.toMatchObject({ code: 'STALE_FENCING_TOKEN' });
  });

  it.each([
    ['missing', undefined],
    ['not a number', 'abc'],
    ['negative', '-3'],
    ['a float', '1.5'],
    ['huge', '9'.repeat(40)],
  ])('answers 400 INVALID_INPUT for a %s token', async (_case, token) => {
    const guard = new MemoryFenceGuard();
    const call = request(app(guard)).post('/leader-only/1');
    const response = await (token === undefined ? call : call.set('causeway-fencing-token', token));
    expect(response.status).toBe(400);
    expect(response.body.code).toBe('INVALID_INPUT');
  });

  it('fences the resource chosen per request, and a custom header', async () => {
    const guard = new MemoryFenceGuard();
    const server = app(guard, {
      resource: (req) => `shard-${(req as unknown as { params: { shard: string } }).params.shard}`,
      header: 'X-Leader-Token',
    });
    await request(server).post('/leader-only/1').set('x-leader-token', '5').expect(200);
    // Another shard has its own fence.
    const other = await request(server).post('/leader-only/2').set('x-leader-token', '1');
    expect(other.body).toEqual({ resource: 'shard-2', token: '1' });
    await request(server).post('/leader-only/1').set('x-leader-token', '4').expect(409);
  });

  it('answers 400 when the resource function yields an invalid name', async () => {
    const server = app(new MemoryFenceGuard(), { resource: () => 'r'.repeat(1000) });
    const response = await request(server)
      .post('/leader-only/1')
      .set('causeway-fencing-token', '1');
    expect(response.status).toBe(400);
    expect(response.body.code).toBe('INVALID_INPUT');
  });

  it('passes other guard failures to next', async () => {
    const broken: FenceGuard<never> = {
      check: async () => {
        throw new Error('storage unreachable');
      },
      close: async () => {},
    };
    const server = app(broken);
    server.use(
      (
        error: Error,
        _req: unknown,
        res: { status(n: number): { json(b: unknown): void } },
        _next: unknown,
      ) => {
        res.status(503).json({ seen: error.message });
      },
    );
    const response = await request(server)
      .post('/leader-only/1')
      .set('causeway-fencing-token', '1');
    expect(response.status).toBe(503);
    expect(response.body).toEqual({ seen: 'storage unreachable' });
  });
});

describe('fenceGuard options', () => {
  it('refuses unusable options with CONFIG', () => {
    const guard = new MemoryFenceGuard();
    for (const options of [
      { guard: {} as FenceGuard<never>, resource: 'r' },
      { guard, resource: '' },
      { guard, resource: 42 as unknown as string },
      { guard, resource: 'r', header: 'bad header' },
    ]) {
      expect(() => fenceGuard(options)).toThrow(expect.objectContaining({ code: 'CONFIG' }));
    }
  });
});

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import express, { type Request, type Response } from 'express';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { createTokenJar, sessionFetch, useSessionTokens } from '../../../src/client/index.js';
import { consistency, consistencyOf } from '../../../src/session/express.js';
import { SUITE_SECRET } from '../../support/framework-suite.js';

let db: MemoryReplicaSet<string>;
const servers: Server[] = [];

/** An app on a real port, for a client that keeps no cookies (Node's fetch and axios keep none). */
async function serve(): Promise<string> {
  const app = express();
  app.use(consistency({ secret: SUITE_SECRET, replicaSet: db, exposeHeader: true }));
  app.post('/items/:key', async (req: Request, res: Response) => {
    await consistencyOf(req).write(db.write(String(req.params['key']), 'v'));
    res.json({ ok: true });
  });
  app.get('/items/:key', async (req: Request, res: Response) => {
    const decision = await consistencyOf(req).read();
    res.json({ value: db.read(decision.node, String(req.params['key'])).value ?? null });
  });
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeEach(() => {
  db = new MemoryReplicaSet<string>({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
});
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))),
  );
  await db.close();
});

describe('sessionFetch', () => {
  it('sends each origin its latest token back: read-your-writes without cookies', async () => {
    const origin = await serve();
    const plain = await fetch(`${origin}/items/a`, { method: 'POST' });
    expect(plain.headers.get('access-control-expose-headers')).toBe('causeway-session');
    expect(await (await fetch(`${origin}/items/a`)).json()).toEqual({ value: null }); // stale

    const api = sessionFetch();
    await api(`${origin}/items/b`, { method: 'POST' });
    expect(await (await api(`${origin}/items/b`)).json()).toEqual({ value: 'v' });
    // A token goes only to the origin that issued it.
    const other = await serve();
    const third = await serve();
    await api(`${other}/items/c`, { method: 'POST' }); // the same db behind every server
    expect(await (await api(new URL(`${third}/items/c`))).json()).toEqual({ value: null });
    expect(await (await api(new Request(`${other}/items/c`))).json()).toEqual({ value: 'v' });
  });

  it('keeps tokens in the storage given (e.g. sessionStorage), shared by a new wrapper', async () => {
    const origin = await serve();
    const kept = new Map<string, string>();
    const storage = {
      getItem: (key: string) => kept.get(key) ?? null,
      setItem: (key: string, value: string) => void kept.set(key, value),
    };
    await sessionFetch({ jar: createTokenJar({ storage }) })(`${origin}/items/d`, {
      method: 'POST',
    });
    expect([...kept.keys()]).toEqual([`causeway-session:${origin}`]);
    const reloaded = sessionFetch({ jar: createTokenJar({ storage }) });
    expect(await (await reloaded(`${origin}/items/d`)).json()).toEqual({ value: 'v' });
  });
});

describe('useSessionTokens (axios)', () => {
  it('an axios instance reads its writes, until the interceptors are removed', async () => {
    const origin = await serve();
    const client = axios.create({ baseURL: origin });
    const remove = useSessionTokens(client);
    await client.post('/items/e');
    expect((await client.get('/items/e')).data).toEqual({ value: 'v' });
    remove();
    expect((await client.get('/items/e')).data).toEqual({ value: null });
  });
});

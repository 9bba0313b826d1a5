import express from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { consistency } from '../../../src/express.js';
import { currentSession } from '../../../src/session/context.js';

const SECRET = 'test-secret-of-at-least-32-chars!';
let users: MemoryReplicaSet<string>;
let orders: MemoryReplicaSet<string>;
beforeEach(() => {
  const replicas = [{ delayMs: Number.POSITIVE_INFINITY }];
  users = new MemoryReplicaSet<string>({ stream: 'users-cluster', replicas });
  orders = new MemoryReplicaSet<string>({ stream: 'orders-cluster', replicas });
});
afterEach(async () => {
  await users.close();
  await orders.close();
});

/** An app whose sessions write to the orders cluster; the middleware's own set is `users`. */
function app(otherReplicaSets?: MemoryReplicaSet<string>[]) {
  const server = express();
  server.use(
    consistency({
      secret: SECRET,
      replicaSet: users,
      ...(otherReplicaSets && { otherReplicaSets }),
    }),
  );
  server.post('/orders', (_req, res) => {
    currentSession()!.noteWrite(orders.write('o1', 'placed'));
    res.json({ ok: true });
  });
  server.get('/floors', (_req, res) => {
    res.json({ streams: currentSession()!.streams });
  });
  return server;
}

describe('consistency() with several clusters', () => {
  it('keeps floors on another cluster listed in otherReplicaSets across requests', async () => {
    const server = app([orders]);
    const wrote = await request(server).post('/orders').expect(200);
    const token = wrote.headers['causeway-session'] as string;
    const read = await request(server).get('/floors').set('causeway-session', token).expect(200);
    expect(read.body.streams).toEqual(['orders-cluster']);
  });

  it('without otherReplicaSets, a token naming only another cluster starts a fresh session', async () => {
    const server = app();
    const wrote = await request(server).post('/orders').expect(200);
    const token = wrote.headers['causeway-session'] as string;
    const read = await request(server).get('/floors').set('causeway-session', token).expect(200);
    expect(read.body.streams).toEqual([]);
  });

  it('otherReplicaSets that is not an array of replica sets is CONFIG', () => {
    expect(() =>
      consistency({ secret: SECRET, replicaSet: users, otherReplicaSets: [{}] as never }),
    ).toThrow(expect.objectContaining({ code: 'CONFIG' }));
  });
});

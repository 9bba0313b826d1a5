import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEditorialApp, type EditorialApp } from '../../../examples/editorial/app.js';
import { createMemoryStore } from '../../../examples/editorial/memory-store.js';
import type { EditorialStore } from '../../../examples/editorial/store.js';

const SECRET = 'a-test-secret-of-at-least-32-characters';

describe('the editorial app', () => {
  let store: EditorialStore;
  let on: EditorialApp;
  let off: EditorialApp;
  beforeEach(() => {
    store = createMemoryStore({ lagMs: 60_000, fastLagMs: 60_000 });
    on = createEditorialApp({ store, causeway: true, secret: SECRET });
    off = createEditorialApp({ store, causeway: false });
  });
  afterEach(async () => {
    await on.close();
    await off.close();
    await store.close();
  });

  it.each([
    [
      'malformed JSON',
      (app: EditorialApp['app']) =>
        request(app).put('/articles/a').set('x-user', 'ann').type('json').send('{bad'),
    ],
    [
      'a bad slug',
      (app: EditorialApp['app']) =>
        request(app)
          .put('/articles/NOT_A_SLUG')
          .set('x-user', 'ann')
          .send({ title: 't', body: 'b' }),
    ],
    [
      'no user',
      (app: EditorialApp['app']) => request(app).put('/articles/a').send({ title: 't', body: 'b' }),
    ],
    [
      'a title that is not a string',
      (app: EditorialApp['app']) =>
        request(app).put('/articles/a').set('x-user', 'ann').send({ title: 1, body: 'b' }),
    ],
    [
      'an unknown publisher',
      (app: EditorialApp['app']) => request(app).post('/admin/publisher/nobody/run').send({}),
    ],
    [
      'negative seats',
      (app: EditorialApp['app']) =>
        request(app).post('/admin/teams').send({ team: 't', seats: -1 }),
    ],
    [
      'a malformed email',
      (app: EditorialApp['app']) =>
        request(app).post('/signup').send({ email: 'x', name: 'n', team: 't', role: 'r' }),
    ],
  ])('answers 400 INVALID_INPUT to %s, with and without Causeway', async (_what, send) => {
    for (const app of [on.app, off.app]) {
      const response = await send(app);
      expect(response.status).toBe(400);
      expect(response.body.code).toBe('INVALID_INPUT');
    }
  });

  it('starts a fresh session for a forged token instead of failing', async () => {
    const response = await request(on.app)
      .get('/articles')
      .set('causeway-session', 'AQforged-token-that-is-not-signed');
    expect(response.status).toBe(200);
  });

  it('reads the editor her own edit with Causeway, and a replica without it', async () => {
    const save = (app: EditorialApp['app']) =>
      request(app).put('/articles/a').set('x-user', 'ann').send({ title: 'T', body: 'B' });
    const saved = await save(on.app).expect(200);
    const preview = await request(on.app)
      .get('/articles/a/preview')
      .set('x-user', 'ann')
      .set('causeway-session', saved.headers['causeway-session'] as string)
      .expect(200);
    expect(preview.body).toMatchObject({ article: { version: 1 }, servedBy: { replica: false } });
    // The replicas apply nothing for a minute: a plain read gets nothing.
    await request(off.app).get('/articles/a/preview').set('x-user', 'ann').expect(404);
  });

  it('leaves nothing of a refused signup with Causeway, and a user without grants without it', async () => {
    await request(on.app).post('/admin/teams').send({ team: 'full', seats: 0 }).expect(201);
    const signup = { name: 'Dan', team: 'full', role: 'writer' };
    const refused = await request(on.app)
      .post('/signup')
      .send({ ...signup, email: 'dan@example.org' })
      .expect(409);
    expect(refused.body.code).toBe('SIGNUP_REFUSED');
    expect(await store.getAccount('dan@example.org')).toEqual({ user: undefined, grants: [] });

    await request(off.app)
      .post('/signup')
      .send({ ...signup, email: 'eve@example.org' })
      .expect(409);
    expect(await store.getAccount('eve@example.org')).toEqual({
      user: { email: 'eve@example.org', name: 'Dan' },
      grants: [],
    });
  });
});

/**
 * The editorial site as an Express app, written once against `EditorialStore`. With
 * `causeway: true` it uses every part of Causeway the way a service would; with `false` it is the
 * same site as most services run it: reads to any replica, a signup as two separate commits,
 * a publisher whose writes nobody fences, drafts that the last save overwrites.
 *
 * Who is calling comes from the `x-user` header (a stand-in for real authentication).
 */
import type { IncomingMessage } from 'node:http';
import {
  CausewayError,
  type ConsistencyLevel,
  ErrorCode,
  isCausewayError,
  TwoPhaseCoordinator,
} from 'causeway';
import { type ConsistencyHandler, consistency, consistencyOf } from 'causeway/express';
import express, { type NextFunction, type Request, type Response } from 'express';
import { type PendingRun, Publisher } from './publisher.js';
import { type Comment, type EditorialStore, isRefusal } from './store.js';

export interface EditorialAppOptions {
  store: EditorialStore;
  /** Causeway on or off. */
  causeway: boolean;
  /** Session token secret(s), each at least 32 characters; the first signs. Needed when on. */
  secret?: string | readonly string[];
  /** Names of the publisher instances this process runs. Default `publisher-a`, `publisher-b`. */
  publisherNames?: readonly string[];
}

export interface EditorialApp {
  readonly app: express.Express;
  readonly publishers: readonly Publisher[];
  /** Stops the publishers' schedules and the 2PC coordinator (the store stays open). */
  close(): Promise<void>;
}

/** The lease and fence resource of each half of the site. */
export const FRONT_PAGE_RESOURCE = {
  on: 'editorial:front-page',
  off: 'editorial:front-page:unfenced',
};

const SLUG = /^[a-z0-9][a-z0-9-]{0,99}$/;
const USER = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const EMAIL = /^[^@\s]{1,64}@[^@\s]{1,190}$/;
const MAX_TEXT = 20_000;

export function createEditorialApp(options: EditorialAppOptions): EditorialApp {
  const { store, causeway } = options;
  if (causeway && options.secret === undefined) {
    throw new Error('a session secret is needed with Causeway on');
  }
  const resource = causeway ? FRONT_PAGE_RESOURCE.on : FRONT_PAGE_RESOURCE.off;
  const publishers = (options.publisherNames ?? ['publisher-a', 'publisher-b']).map(
    (worker) => new Publisher({ worker, store, resource, fenced: causeway }),
  );
  const pending = new Map<string, PendingRun>();
  const coordinator = causeway
    ? new TwoPhaseCoordinator({
        coordinatorId: 'editorial',
        log: store.decisionLog,
        participants: store.participants,
      })
    : undefined;
  // Finishes or rolls back what a crash left prepared (every 60 s, unref'd timer).
  coordinator?.startRecovery();

  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '100kb' }));
  let c: ConsistencyHandler | undefined;
  if (causeway) {
    c = consistency({
      secret: options.secret!,
      router: store.router,
      // Editors' floors follow them from laptop to phone: kept by user on the server.
      store: store.sessionStore,
      userKey: userOf,
      routeHeader: true,
    });
    app.use(c);
  }
  /** This route's consistency level with Causeway on; nothing without it. */
  const level = (lvl: ConsistencyLevel) =>
    c?.level(lvl) ?? ((_req: Request, _res: Response, next: NextFunction) => next());

  // Articles. Editors save and preview (read-your-writes, the default level); readers browse,
  // and a public page must never go back in time: monotonic reads.
  app.get('/articles', level('monotonic'), async (_req, res) => {
    const { value, servedBy } = await store.listArticles();
    res.json({ articles: value, servedBy });
  });
  app.put('/articles/:slug', async (req, res) => {
    const article = await store.saveArticle({
      slug: slugOf(req),
      title: text(req.body?.title, 'title', 200),
      body: text(req.body?.body, 'body', MAX_TEXT),
      editor: editorOf(req),
    });
    res.json({ article });
  });
  app.get('/articles/:slug/preview', async (req, res) => {
    editorOf(req);
    const { value, servedBy } = await store.getArticle(slugOf(req));
    res.status(value === undefined ? 404 : 200).json({ article: value ?? null, servedBy });
  });
  app.get('/articles/:slug', level('monotonic'), async (req, res) => {
    const { value, servedBy } = await store.getArticle(slugOf(req));
    res.status(value === undefined ? 404 : 200).json({ article: value ?? null, servedBy });
  });

  // Comment threads. The page reads the replies first and the comments second: within a
  // session every read is at least as new as the one before (the read floor), so each reply's
  // comment, committed before it, is in the second read. Without a floor the second read can
  // come from a replica further behind than the first, and show a reply to nothing.
  app.get('/articles/:slug/comments', level('monotonic'), async (req, res) => {
    const slug = slugOf(req);
    const replies = await store.getReplies(slug);
    const comments = await store.getComments(slug);
    res.json({
      comments: comments.value,
      replies: replies.value,
      servedBy: [replies.servedBy, comments.servedBy],
    });
  });
  app.post('/articles/:slug/comments', async (req, res) => {
    const replyTo = req.body?.replyTo;
    const input: Omit<Comment, 'id'> = {
      article: slugOf(req),
      author: editorOf(req),
      body: text(req.body?.body, 'body', 2_000),
      ...(replyTo === undefined ? {} : { replyTo: text(replyTo, 'replyTo', 64) }),
    };
    res.status(201).json({ comment: await store.addComment(input) });
  });

  // The front page may be a few seconds old, but no older: bounded staleness.
  app.get('/front-page', level({ maxStalenessMs: 5_000 }), async (_req, res) => {
    const { value, servedBy } = await store.getFrontPage(resource);
    res.json({ frontPage: value ?? null, servedBy });
  });

  // Signup: a user row in the users database and a seat with its grant in the permissions
  // database, both or neither (with Causeway); two independent commits without it.
  app.post('/signup', async (req, res) => {
    const email = text(req.body?.email, 'email', 256);
    if (!EMAIL.test(email)) throw invalid('email must look like name@example.org');
    const user = { email, name: text(req.body?.name, 'name', 200) };
    const grant = {
      email,
      team: text(req.body?.team, 'team', 100),
      role: text(req.body?.role, 'role', 50),
    };
    try {
      if (coordinator !== undefined) {
        await coordinator.transaction(async (tx) => {
          await store.insertUser(tx.participant('users'), user);
          await store.takeSeat(tx.participant('permissions'), grant);
        });
        // The users table is on the replicated primary: the new user reads their own signup.
        await consistencyOf(req).write();
      } else {
        await store.commitAlone('users', (branch) => store.insertUser(branch, user));
        await store.commitAlone('permissions', (branch) => store.takeSeat(branch, grant));
      }
    } catch (error) {
      if (isCausewayError(error, ErrorCode.TXN_ABORTED) || isRefusal(error)) {
        res.status(409).json({
          code: 'SIGNUP_REFUSED',
          message: messageOf(isCausewayError(error) ? (error.cause ?? error) : error),
        });
        return;
      }
      throw error;
    }
    res.status(201).json({ email });
  });

  // Drafts, edited offline by several editors. With Causeway the body keeps concurrent edits
  // as siblings (each save carries the context it was based on) and the headline is
  // last-write-wins by hybrid logical clock; without it each save overwrites the row.
  app.get('/drafts/:id', async (req, res) => {
    res.json(await readDraft(slugOf(req, 'id')));
  });
  app.put('/drafts/:id', async (req, res) => {
    const id = slugOf(req, 'id');
    const actor = editorOf(req);
    const body = optionalText(req.body?.body, 'body', MAX_TEXT);
    const headline = optionalText(req.body?.headline, 'headline', 200);
    if (causeway) {
      if (body !== undefined) {
        const context = optionalText(req.body?.context, 'context', 10_000) ?? '';
        await store.draftBodies.put(id, body, { context, actor });
      }
      if (headline !== undefined) {
        const context = optionalText(req.body?.headlineContext, 'headlineContext', 1_000) ?? '';
        await store.draftHeadlines.put(id, headline, { context, actor });
      }
    } else {
      const current = (await store.getPlainDraft(id)) ?? { body: '', headline: '' };
      await store.savePlainDraft(id, {
        body: body ?? current.body,
        headline: headline ?? current.headline,
      });
    }
    res.json(await readDraft(id));
  });

  async function readDraft(id: string) {
    if (!causeway) {
      const draft = await store.getPlainDraft(id);
      return { bodies: draft === undefined ? [] : [draft.body], headline: draft?.headline ?? null };
    }
    const [bodies, headline] = await Promise.all([
      store.draftBodies.get(id),
      store.draftHeadlines.get(id),
    ]);
    return {
      bodies: bodies.values,
      context: bodies.context,
      headline: headline.values[0] ?? null,
      headlineContext: headline.context,
    };
  }

  // Operations: accounts as both primaries hold them, teams, the publisher job, replication.
  app.get('/admin/accounts/:email', async (req, res) => {
    res.json(await store.getAccount(text(req.params['email'], 'email', 256)));
  });
  app.post('/admin/teams', async (req, res) => {
    const seats = req.body?.seats;
    if (!Number.isSafeInteger(seats) || seats < 0) throw invalid('seats must be an integer >= 0');
    await store.createTeam(text(req.body?.team, 'team', 100), seats);
    res.status(201).json({ ok: true });
  });
  const publisherOf = (req: Request): Publisher => {
    const publisher = publishers.find((p) => p.worker === req.params['worker']);
    if (publisher === undefined) throw invalid('no such publisher instance');
    return publisher;
  };
  const leaseTtlOf = (req: Request): number | undefined => {
    const ttlMs = req.body?.leaseTtlMs;
    if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs < 1)) {
      throw invalid('leaseTtlMs must be a positive integer');
    }
    return ttlMs;
  };
  // One scheduled run, now: publishes if this instance gets the lease (503 LEASE_NOT_HELD).
  app.post('/admin/publisher/:worker/run', async (req, res) => {
    const publisher = publisherOf(req);
    const run = await publisher.begin(leaseTtlOf(req));
    await publisher.commit(run);
    res.json({ published: true, token: run.lease.token.toString() });
  });
  // A run cut in two, to show what a pause between taking the lease and writing does.
  app.post('/admin/publisher/:worker/begin', async (req, res) => {
    const publisher = publisherOf(req);
    const run = await publisher.begin(leaseTtlOf(req));
    pending.set(publisher.worker, run);
    res.json({ token: run.lease.token.toString(), expiresAt: run.lease.expiresAt });
  });
  app.post('/admin/publisher/:worker/commit', async (req, res) => {
    const publisher = publisherOf(req);
    const run = pending.get(publisher.worker);
    if (run === undefined) throw invalid('this instance has no run in progress');
    pending.delete(publisher.worker);
    await publisher.commit(run);
    res.json({ published: true, token: run.lease.token.toString() });
  });
  app.get('/admin/front-page', async (_req, res) => {
    const { value } = await store.getFrontPage(resource, { leader: true });
    res.json({ frontPage: value ?? null });
  });
  app.get('/admin/replication', async (_req, res) => {
    res.json({ nodes: await store.nodes() });
  });
  app.post('/admin/replication/wait', async (req, res) => {
    const count = req.body?.replicas ?? 1;
    const timeoutMs = req.body?.timeoutMs ?? 5_000;
    if (!Number.isSafeInteger(count) || count < 1) throw invalid('replicas must be >= 1');
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 60_000) {
      throw invalid('timeoutMs must be 0 to 60000');
    }
    res.json(await store.waitForReplicas(count, timeoutMs));
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof CausewayError) {
      res.status(error.httpStatus).json({ code: error.code, message: error.message });
    } else if (isClientError(error)) {
      // The body parser's own errors: malformed JSON (400), a body over the limit (413)...
      res.status(error.status).json({ code: ErrorCode.INVALID_INPUT, message: error.message });
    } else if (isRefusal(error)) {
      res.status(409).json({ code: 'REFUSED', message: messageOf(error) });
    } else {
      res.status(500).json({ code: 'INTERNAL', message: 'internal error' });
    }
  });

  return {
    app,
    publishers,
    async close() {
      await Promise.all(publishers.map((publisher) => publisher.stop()));
      await coordinator?.close();
    },
  };
}

function invalid(message: string): CausewayError {
  return new CausewayError(ErrorCode.INVALID_INPUT, message);
}

function text(value: unknown, field: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw invalid(`${field} must be a string of 1 to ${maxLength} characters`);
  }
  return value;
}

function optionalText(value: unknown, field: string, maxLength: number): string | undefined {
  return value === undefined ? undefined : text(value, field, maxLength);
}

function slugOf(req: Request, param = 'slug'): string {
  const slug = req.params[param];
  if (typeof slug !== 'string' || !SLUG.test(slug)) {
    throw invalid(`${param} must be lower-case letters, digits and dashes`);
  }
  return slug;
}

/** The caller's user name from `x-user`, if it is a valid one. */
function userOf(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  const user = req.headers['x-user'];
  return typeof user === 'string' && USER.test(user) ? user : undefined;
}

function editorOf(req: Request): string {
  const user = userOf(req);
  if (user === undefined) throw invalid('send your user name in the x-user header');
  return user;
}

function isClientError(error: unknown): error is { status: number; message: string } {
  const { status, expose } = (error ?? {}) as { status?: unknown; expose?: unknown };
  return typeof status === 'number' && status >= 400 && status < 500 && expose === true;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The editorial store on real servers: articles, comments and users on a PostgreSQL primary
 * with streaming replicas, read through `createReplicatedPool` exactly as plain `pg` code would;
 * grants on a second PostgreSQL database; session floors and draft headlines in Redis.
 */

import { currentSession, type TransactionBranch } from 'causeway';
import {
  createReplicatedPool,
  formatLsn,
  NearCache,
  PgDecisionLog,
  PgFenceGuard,
  PgLeaseManager,
  PgParticipant,
  PgVersionedStore,
  parseLsn,
} from 'causeway/pg';
import { RedisSessionStore, RedisVersionedStore } from 'causeway/redis';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  type AccountDatabase,
  type Article,
  type Comment,
  type EditorialStore,
  type FrontPage,
  type NodeState,
  type Served,
  type ServedBy,
  waitForReplicas,
} from './store.js';

/** The variables `npm run demo -- --postgres` reads (all or none; none starts servers). */
export const DEMO_ENV = {
  primaryUrl: 'CAUSEWAY_DEMO_PRIMARY_URL',
  /** Comma-separated, the replica that applies fastest first. */
  replicaUrls: 'CAUSEWAY_DEMO_REPLICA_URLS',
  permissionsUrl: 'CAUSEWAY_DEMO_PERMISSIONS_URL',
  redisUrl: 'CAUSEWAY_DEMO_REDIS_URL',
} as const;

export interface PostgresStoreOptions {
  /** The primary: articles, comments, users, drafts, leases, fences and the 2PC decision log. */
  primaryUrl: string;
  /** Its streaming replicas, named `replica-1`, `replica-2`... in this order. */
  replicaUrls: readonly string[];
  /** A second, independent PostgreSQL database: team seats and grants. */
  permissionsUrl: string;
  redisUrl: string;
}

const PRIMARY_SCHEMA = `
CREATE TABLE IF NOT EXISTS editorial_articles (
  slug text PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  version int NOT NULL,
  updated_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS editorial_comments (
  id bigserial PRIMARY KEY,
  article text NOT NULL,
  author text NOT NULL,
  body text NOT NULL,
  reply_to bigint REFERENCES editorial_comments (id)
);
CREATE INDEX IF NOT EXISTS editorial_comments_by_article ON editorial_comments (article, id);
CREATE TABLE IF NOT EXISTS editorial_users (email text PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS editorial_front_pages (resource text PRIMARY KEY, page jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS editorial_plain_drafts (
  id text PRIMARY KEY,
  body text NOT NULL,
  headline text NOT NULL
)`;

const PERMISSIONS_SCHEMA = `
CREATE TABLE IF NOT EXISTS editorial_team_seats (
  team text PRIMARY KEY,
  seats int NOT NULL,
  used int NOT NULL DEFAULT 0,
  CHECK (used <= seats)
);
CREATE TABLE IF NOT EXISTS editorial_grants (
  email text NOT NULL,
  team text NOT NULL REFERENCES editorial_team_seats (team),
  role text NOT NULL,
  PRIMARY KEY (email, team)
)`;

const ARTICLE_COLUMNS = `slug, title, body, version, updated_by AS "updatedBy",
  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "updatedAt"`;
const COMMENT_COLUMNS = `id::text AS id, article, author, body, reply_to::text AS "replyTo"`;

/**
 * Every routed read selects `inet_server_port()`: the server that ran it says which node it is,
 * so the demo's counts of replica reads come from the data, not from the router's word.
 */
const SERVED_PORT = 'inet_server_port() AS served_port';

/** Connects, creates the tables (idempotently) and waits until every replica has them. */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<EditorialStore> {
  const primaryPool = new pg.Pool({ connectionString: options.primaryUrl, max: 10 });
  const permissionsPool = new pg.Pool({ connectionString: options.permissionsUrl, max: 10 });
  const replicaNames = options.replicaUrls.map((_, i) => `replica-${i + 1}`);
  // The `pg` drop-in: inside a session reads follow the session's floors; outside one they go
  // to the replicas in turn (what the "Causeway off" half of the site gets).
  const pool = createReplicatedPool({
    primary: { name: 'primary', pool: primaryPool },
    replicas: options.replicaUrls.map((url, i) => ({
      name: replicaNames[i],
      config: { connectionString: url, max: 10 },
    })),
    readOutsideSession: 'replica',
    classifier: { readOnlyFunctions: ['inet_server_port'] },
  });
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 2 });
  // A server going away while a connection is idle must not crash the service (an 'error'
  // event nobody listens to would): the next query reports it.
  const ignore = () => {};
  primaryPool.on('error', ignore);
  permissionsPool.on('error', ignore);
  redis.on('error', ignore);
  const nodeByPort = new Map<number, ServedBy>([
    [portOf(options.primaryUrl), { node: 'primary', replica: false }],
    ...options.replicaUrls.map((url, i): [number, ServedBy] => [
      portOf(url),
      { node: replicaNames[i]!, replica: true },
    ]),
  ]);
  const servedBy = (row: Record<string, unknown> | undefined): ServedBy =>
    nodeByPort.get(Number(row?.['served_port'])) ?? { node: 'unknown', replica: false };

  const fence = new PgFenceGuard({ pool: primaryPool });
  const draftBodies = new PgVersionedStore<string>({
    pool: primaryPool,
    handler: 'siblings',
    table: 'editorial_draft_bodies',
  });
  const draftHeadlines = new RedisVersionedStore<string>({
    redis,
    handler: 'lww',
    keyPrefix: 'editorial:headline:',
  });
  const pools: Record<AccountDatabase, pg.Pool> = {
    users: primaryPool,
    permissions: permissionsPool,
  };

  // Article pages from the near cache (opened once the schema exists): in a session, from memory
  // when it has applied the session's floors (an editor's preview waits for the edit, briefly).
  // Outside a session ("Causeway off") reads stay on the replicas, to show what goes wrong.
  let nearCache: NearCache | undefined;

  async function routedRow(text: string, values: unknown[]): Promise<Record<string, unknown>> {
    const { rows } = await pool.query(text, values);
    return rows[0] as Record<string, unknown>;
  }

  const store: EditorialStore = {
    kind: 'postgres',
    description:
      `PostgreSQL: a primary with ${replicaNames.length} streaming replicas ` +
      `(${replicaNames.join(', ')}), a second database for permissions, and Redis`,
    router: pool.router,
    replicaSet: pool.replicaSet,
    sessionStore: new RedisSessionStore({ redis }),

    async saveArticle({ slug, title, body, editor }) {
      const { rows } = await pool.query(
        `INSERT INTO editorial_articles AS a (slug, title, body, version, updated_by)
         VALUES ($1, $2, $3, 1, $4)
         ON CONFLICT (slug) DO UPDATE SET title = excluded.title, body = excluded.body,
           version = a.version + 1, updated_by = excluded.updated_by, updated_at = now()
         RETURNING ${ARTICLE_COLUMNS}`,
        [slug, title, body, editor],
      );
      return rows[0] as Article;
    },
    async getArticle(slug) {
      if (nearCache !== undefined && currentSession() !== undefined) {
        const answer = await nearCache.table<ArticleRow>('editorial_articles').get(slug);
        return {
          value: answer.value && articleOf(answer.value),
          servedBy: { node: answer.node, replica: answer.source !== 'leader' },
        };
      }
      const row = await routedRow(
        `SELECT ${SERVED_PORT},
           (SELECT row_to_json(a) FROM (SELECT ${ARTICLE_COLUMNS}
              FROM editorial_articles WHERE slug = $1) a) AS article`,
        [slug],
      );
      return { value: (row['article'] as Article | null) ?? undefined, servedBy: servedBy(row) };
    },
    async listArticles() {
      const row = await routedRow(
        `SELECT ${SERVED_PORT},
           coalesce((SELECT json_agg(a) FROM (SELECT ${ARTICLE_COLUMNS} FROM editorial_articles
              ORDER BY updated_at DESC LIMIT 20) a), '[]') AS articles`,
        [],
      );
      return { value: row['articles'] as Article[], servedBy: servedBy(row) };
    },

    async addComment({ article, author, body, replyTo }) {
      const { rows } = await pool.query(
        `INSERT INTO editorial_comments (article, author, body, reply_to) VALUES ($1, $2, $3, $4)
         RETURNING ${COMMENT_COLUMNS}`,
        [article, author, body, replyTo ?? null],
      );
      return withoutNulls(rows[0] as Comment);
    },
    getComments: (article) => comments(article, 'reply_to IS NULL'),
    getReplies: (article) => comments(article, 'reply_to IS NOT NULL'),

    participants: {
      users: new PgParticipant({ pool: primaryPool }),
      permissions: new PgParticipant({ pool: permissionsPool }),
    },
    decisionLog: new PgDecisionLog({ pool: primaryPool }),
    async insertUser(branch, { email, name }) {
      await branch.query('INSERT INTO editorial_users (email, name) VALUES ($1, $2)', [
        email,
        name,
      ]);
    },
    async takeSeat(branch, { email, team, role }) {
      // The CHECK (used <= seats) constraint refuses the last-but-one seat's successor.
      const { rowCount } = await branch.query(
        'UPDATE editorial_team_seats SET used = used + 1 WHERE team = $1',
        [team],
      );
      if (rowCount !== 1) throw new Error(`the permissions database has no team "${team}"`);
      await branch.query('INSERT INTO editorial_grants (email, team, role) VALUES ($1, $2, $3)', [
        email,
        team,
        role,
      ]);
    },
    async commitAlone(database, fn) {
      const client = await pools[database].connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const branch: TransactionBranch = {
          query: async (text, values) => {
            const { rows, rowCount } = await client.query(text, values as unknown[]);
            return { rows, rowCount };
          },
        };
        await fn(branch);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw error;
      } finally {
        client.release(broken);
      }
    },
    async createTeam(team, seats) {
      await permissionsPool.query(
        `INSERT INTO editorial_team_seats (team, seats) VALUES ($1, $2)
         ON CONFLICT (team) DO UPDATE SET seats = excluded.seats`,
        [team, seats],
      );
    },
    async getAccount(email) {
      const [users, grants] = await Promise.all([
        primaryPool.query('SELECT email, name FROM editorial_users WHERE email = $1', [email]),
        permissionsPool.query(
          'SELECT team, role FROM editorial_grants WHERE email = $1 ORDER BY team',
          [email],
        ),
      ]);
      return {
        user: users.rows[0] as { email: string; name: string } | undefined,
        grants: grants.rows as { team: string; role: string }[],
      };
    },

    leases: new PgLeaseManager({ pool: primaryPool }),
    async writeFrontPage(resource, page, fencingToken) {
      const upsert = `INSERT INTO editorial_front_pages (resource, page) VALUES ($1, $2)
        ON CONFLICT (resource) DO UPDATE SET page = excluded.page`;
      const values = [resource, JSON.stringify(page)];
      if (fencingToken === undefined) {
        await primaryPool.query(upsert, values);
        return;
      }
      // The fence check and the write commit in one transaction, or neither does.
      await fence.write(resource, fencingToken, (client) => client.query(upsert, values));
    },
    async getFrontPage(resource, { leader = false } = {}) {
      const text = `SELECT ${SERVED_PORT},
        (SELECT page FROM editorial_front_pages WHERE resource = $1) AS page`;
      const { rows } = leader
        ? await primaryPool.query(text, [resource])
        : await pool.query(text, [resource]);
      const row = rows[0] as Record<string, unknown>;
      return { value: (row['page'] as FrontPage | null) ?? undefined, servedBy: servedBy(row) };
    },

    draftBodies,
    draftHeadlines,
    async savePlainDraft(id, { body, headline }) {
      await primaryPool.query(
        `INSERT INTO editorial_plain_drafts (id, body, headline) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, headline = excluded.headline`,
        [id, body, headline],
      );
    },
    async getPlainDraft(id) {
      const { rows } = await primaryPool.query(
        'SELECT body, headline FROM editorial_plain_drafts WHERE id = $1',
        [id],
      );
      return rows[0] as { body: string; headline: string } | undefined;
    },

    async nodes(): Promise<NodeState[]> {
      const { leader, replicas } = pool.replicaSet.snapshot();
      return [leader, ...replicas].map((node) => ({
        name: node.name,
        role: node === leader ? 'leader' : 'replica',
        position: node.position && formatLsn(node.position.lsn),
        lagMs: node.lagMs,
      }));
    },
    async waitForReplicas(count, timeoutMs) {
      // The WAL write location, not the insert location: on an idle primary the insert
      // location can sit past a page header that replicas only pass after the next write.
      const { rows } = await primaryPool.query('SELECT pg_current_wal_lsn()::text AS lsn');
      let history = pool.replicaSet.snapshot().leader.position;
      if (history === undefined) {
        await pool.replicaSet.refresh();
        history = pool.replicaSet.snapshot().leader.position;
      }
      if (history === undefined) return { caughtUp: [], behind: replicaNames };
      const target = { ...history, lsn: parseLsn(String(rows[0]?.['lsn'])) };
      return waitForReplicas(pool.replicaSet, replicaNames, target, count, timeoutMs);
    },

    async close() {
      await nearCache?.close();
      await pool.end();
      await Promise.all([primaryPool.end(), permissionsPool.end()]);
      await redis.quit().catch(() => redis.disconnect());
    },
  };

  async function comments(article: string, filter: string): Promise<Served<Comment[]>> {
    const row = await routedRow(
      `SELECT ${SERVED_PORT},
         coalesce((SELECT json_agg(c ORDER BY c.id) FROM (SELECT ${COMMENT_COLUMNS}
            FROM editorial_comments WHERE article = $1 AND ${filter}) c), '[]') AS comments`,
      [article],
    );
    return {
      value: (row['comments'] as Comment[]).map(withoutNulls),
      servedBy: servedBy(row),
    };
  }

  try {
    await createSchema(primaryPool, PRIMARY_SCHEMA);
    await createSchema(permissionsPool, PERMISSIONS_SCHEMA);
    await pool.replicaSet.refresh();
    nearCache = await NearCache.open({
      primary: options.primaryUrl,
      pool,
      tables: ['editorial_articles'],
    }).catch((error: unknown) => {
      // E.g. a primary without wal_level = logical: the pages are read from the replicas.
      console.warn(`near cache off: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    });
    const { behind } = await store.waitForReplicas(replicaNames.length, 30_000);
    if (behind.length > 0)
      throw new Error(`replicas not streaming the schema: ${behind.join(', ')}`);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

/** A row of editorial_articles as the near cache holds it. */
interface ArticleRow {
  slug: string;
  title: string;
  body: string;
  version: number;
  updated_by: string;
  updated_at: Date;
}

function articleOf(row: ArticleRow): Article {
  const { slug, title, body, version } = row;
  return {
    slug,
    title,
    body,
    version,
    updatedBy: row.updated_by,
    updatedAt: row.updated_at.toISOString(),
  };
}

/** Runs the DDL in one transaction, serialised across processes by an advisory lock. */
async function createSchema(pool: pg.Pool, ddl: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('causeway-editorial-schema'))");
    await client.query(ddl);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

function portOf(url: string): number {
  return Number(new URL(url).port || 5432);
}

function withoutNulls(comment: Comment): Comment {
  const { replyTo, ...rest } = comment;
  return replyTo === null || replyTo === undefined ? rest : { ...rest, replyTo };
}

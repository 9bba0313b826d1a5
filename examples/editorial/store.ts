/**
 * The editorial site's storage, behind one small interface so that the routes, the signup
 * service and the publisher are written once. Two implementations:
 *
 * - `createMemoryStore()` (memory-store.ts): Causeway's in-process adapters, no server needed.
 * - `createPostgresStore()` (postgres-store.ts): a PostgreSQL primary with streaming replicas
 *   through `createReplicatedPool`, a second PostgreSQL database for permissions, and Redis.
 *
 * Reads of articles and comments go through Causeway's router in both: inside a session (the
 * `consistency()` middleware) they get the session guarantees; outside one they go to the
 * replicas in turn, as the Node ORMs' replica extensions do. That difference alone is what the
 * demo's "Causeway off" mode switches.
 */
import type {
  DecisionLog,
  LeaseManager,
  Participant,
  Position,
  ReplicaSet,
  Router,
  SessionStore,
  TransactionBranch,
  VersionedStore,
} from 'causeway';

/**
 * A database refused a write on its own rules (a constraint): the memory databases throw this,
 * PostgreSQL answers with SQLSTATE class 23 (integrity constraint violation).
 */
export class RefusedError extends Error {
  override readonly name = 'RefusedError';
}

/** True when `error` is a refusal by a database's own rules, in either implementation. */
export function isRefusal(error: unknown): boolean {
  if (error instanceof RefusedError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('23');
}

export interface Article {
  readonly slug: string;
  readonly title: string;
  readonly body: string;
  /** 1 on creation, +1 on every save: what the walk-through compares to spot stale pages. */
  readonly version: number;
  readonly updatedBy: string;
  readonly updatedAt: string;
}

export interface Comment {
  readonly id: string;
  readonly article: string;
  readonly author: string;
  readonly body: string;
  /** The comment this one answers; undefined for a top-level comment. */
  readonly replyTo?: string;
}

export interface FrontPage {
  readonly headlines: readonly string[];
  /** The publisher instance that wrote it and the fencing token its lease carried. */
  readonly worker: string;
  readonly token: string;
  readonly publishedAt: string;
}

export interface Account {
  readonly user: { readonly email: string; readonly name: string } | undefined;
  readonly grants: readonly { readonly team: string; readonly role: string }[];
}

/** Where a read was served: the node that ran it, as the storage itself reports it. */
export interface ServedBy {
  readonly node: string;
  readonly replica: boolean;
}

export interface Served<T> {
  readonly value: T;
  readonly servedBy: ServedBy;
}

/** A node of the replicated database and the position it has applied (for the ops endpoint). */
export interface NodeState {
  readonly name: string;
  readonly role: 'leader' | 'replica';
  readonly position: string | undefined;
  readonly lagMs: number | undefined;
}

/** The two databases of a signup. */
export type AccountDatabase = 'users' | 'permissions';

export interface EditorialStore {
  /** `'memory'` or `'postgres'`, and a one-line description of the topology for the report. */
  readonly kind: 'memory' | 'postgres';
  readonly description: string;
  /** The router shared with the `consistency()` middleware. */
  readonly router: Router;
  readonly replicaSet: ReplicaSet;
  /** Keeps each editor's session floors on the server (read-your-writes across devices). */
  readonly sessionStore: SessionStore;

  // Articles and comments: writes on the leader, reads routed.
  saveArticle(input: {
    slug: string;
    title: string;
    body: string;
    editor: string;
  }): Promise<Article>;
  getArticle(slug: string): Promise<Served<Article | undefined>>;
  listArticles(): Promise<Served<Article[]>>;
  addComment(input: Omit<Comment, 'id'>): Promise<Comment>;
  /** Top-level comments of an article, oldest first. */
  getComments(article: string): Promise<Served<Comment[]>>;
  /** Replies of an article's comments, oldest first. */
  getReplies(article: string): Promise<Served<Comment[]>>;

  // Accounts: users in one database, grants in another.
  readonly participants: Readonly<Record<AccountDatabase, Participant>>;
  readonly decisionLog: DecisionLog;
  insertUser(branch: TransactionBranch, user: { email: string; name: string }): Promise<void>;
  /** Takes a seat of `team` for `email`; the permissions database refuses when none is left. */
  takeSeat(
    branch: TransactionBranch,
    grant: { email: string; team: string; role: string },
  ): Promise<void>;
  /** Runs `fn` in a plain transaction of one database and commits it on its own. */
  commitAlone(
    database: AccountDatabase,
    fn: (branch: TransactionBranch) => Promise<void>,
  ): Promise<void>;
  createTeam(team: string, seats: number): Promise<void>;
  /** What both primaries hold for `email` (never a replica: this is the audit). */
  getAccount(email: string): Promise<Account>;

  // The front page, written by the publisher job.
  readonly leases: LeaseManager;
  /**
   * Writes the front page. With `fencingToken` the storage checks the token in the same step
   * as the write and refuses an older one (`STALE_FENCING_TOKEN`); without it, a plain write.
   */
  writeFrontPage(resource: string, page: FrontPage, fencingToken?: bigint): Promise<void>;
  /** The front page as readers get it (routed), or with `{ leader: true }` as the leader has it. */
  getFrontPage(
    resource: string,
    options?: { leader?: boolean },
  ): Promise<Served<FrontPage | undefined>>;

  // Drafts: the body keeps concurrent edits as siblings, the headline is last-write-wins.
  readonly draftBodies: VersionedStore<string>;
  readonly draftHeadlines: VersionedStore<string>;
  /** A plain draft row (what the site stores without Causeway: each save overwrites). */
  savePlainDraft(id: string, draft: { body: string; headline: string }): Promise<void>;
  getPlainDraft(id: string): Promise<{ body: string; headline: string } | undefined>;

  // Operations.
  nodes(): Promise<NodeState[]>;
  /**
   * Waits until at least `count` replicas have applied everything the leader had committed when
   * called; resolves with the names of those that had, and of those still behind.
   */
  waitForReplicas(
    count: number,
    timeoutMs: number,
  ): Promise<{ caughtUp: string[]; behind: string[] }>;
  close(): Promise<void>;
}

/**
 * Resolves once `count` of `replicas` have reached `target` (or all have settled), with the
 * names of those that had and of those still behind at that moment.
 */
export function waitForReplicas(
  replicaSet: ReplicaSet,
  replicas: readonly string[],
  target: Position,
  count: number,
  timeoutMs: number,
): Promise<{ caughtUp: string[]; behind: string[] }> {
  return new Promise((resolve) => {
    const caughtUp: string[] = [];
    let settled = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve({ caughtUp: [...caughtUp], behind: replicas.filter((r) => !caughtUp.includes(r)) });
    };
    if (replicas.length === 0) finish();
    for (const name of replicas) {
      void replicaSet
        .waitFor(name, target, timeoutMs)
        .catch(() => false)
        .then((reached) => {
          settled++;
          if (reached) caughtUp.push(name);
          if (caughtUp.length >= count || settled === replicas.length) finish();
        });
    }
  });
}

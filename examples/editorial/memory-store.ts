/**
 * The editorial store on Causeway's in-process adapters: nothing to install or start. The
 * articles database is a `MemoryReplicaSet` (a leader and two replicas that apply each write
 * late, like streaming replicas under load); users and permissions are two `MemoryParticipant`
 * databases whose committed statements are their data.
 */
import { randomUUID } from 'node:crypto';
import { currentSession, Router, type TransactionBranch } from 'causeway';
import {
  MemoryDecisionLog,
  MemoryFenceGuard,
  MemoryLeaseManager,
  MemoryParticipant,
  MemoryReplicaSet,
  MemorySessionStore,
  MemoryVersionedStore,
} from 'causeway/memory';
import {
  type Account,
  type Article,
  type Comment,
  type EditorialStore,
  type FrontPage,
  type NodeState,
  RefusedError,
  type Served,
  waitForReplicas,
} from './store.js';

export interface MemoryStoreOptions {
  /** How late the slower replica (`replica-2`) applies each write. Default 1000 ms. */
  lagMs?: number;
  /** How late the faster replica (`replica-1`) applies each write. Default `lagMs / 20`. */
  fastLagMs?: number;
}

// The statements the account databases record. The memory participant keeps them as they are;
// the tables below are read back from what was committed.
const INSERT_USER = 'INSERT INTO users (email, name) VALUES ($1, $2)';
const INSERT_TEAM = 'INSERT INTO team_seats (team, seats) VALUES ($1, $2)';
const INSERT_GRANT = 'INSERT INTO grants (email, team, role) VALUES ($1, $2, $3)';

export function createMemoryStore(options: MemoryStoreOptions = {}): EditorialStore {
  const lagMs = options.lagMs ?? 1000;
  const fastLagMs = options.fastLagMs ?? Math.max(1, Math.round(lagMs / 20));
  const db = new MemoryReplicaSet<unknown>({
    replicas: [
      { name: 'replica-1', delayMs: fastLagMs },
      { name: 'replica-2', delayMs: lagMs },
    ],
  });
  const router = new Router({ replicaSet: db });
  const leader = db.leaderName;
  const users = new MemoryParticipant({ name: 'users' });
  const permissions = new MemoryParticipant({ name: 'permissions' });
  const fence = new MemoryFenceGuard();
  const sessionStore = new MemorySessionStore();
  const draftBodies = new MemoryVersionedStore<string>({ handler: 'siblings' });
  const draftHeadlines = new MemoryVersionedStore<string>({ handler: 'lww' });

  /** A write on the leader; inside a session its position becomes the write floor. */
  function write(key: string, value: unknown): void {
    const position = db.write(key, value);
    currentSession()?.noteWrite(position);
  }

  /** What the leader has now (for read-modify-write on the leader). */
  function onLeader<T>(key: string): T | undefined {
    return db.read(leader, key).value as T | undefined;
  }

  /**
   * A read where the router sends it: inside a session at or past its floors, which then rise
   * to the position the node had applied; outside one, the replicas in turn.
   */
  async function read<T>(key: string): Promise<Served<T | undefined>> {
    const session = currentSession();
    const { node } = await router.route(session);
    const { value, position } = db.read(node, key);
    session?.noteRead(position);
    return { value: value as T | undefined, servedBy: { node, replica: node !== leader } };
  }

  /** Values of `statement` committed in `participant`, in commit order. */
  function committed(participant: MemoryParticipant, statement: string): unknown[][] {
    return participant.commits.flatMap((commit) =>
      commit.statements.filter((s) => s.text === statement).map((s) => [...s.values]),
    );
  }

  const store: EditorialStore = {
    kind: 'memory',
    description:
      `memory adapters: a leader, replica-1 applying each write ${fastLagMs} ms late and ` +
      `replica-2 ${lagMs} ms late`,
    router,
    replicaSet: db,
    sessionStore,

    async saveArticle({ slug, title, body, editor }) {
      const previous = onLeader<Article>(`article:${slug}`);
      const article: Article = {
        slug,
        title,
        body,
        version: (previous?.version ?? 0) + 1,
        updatedBy: editor,
        updatedAt: new Date().toISOString(),
      };
      write(`article:${slug}`, article);
      const others = (onLeader<Article[]>('articles') ?? []).filter((a) => a.slug !== slug);
      write('articles', [article, ...others]);
      return article;
    },
    getArticle: (slug) => read<Article>(`article:${slug}`),
    async listArticles() {
      const { value, servedBy } = await read<Article[]>('articles');
      return { value: value ?? [], servedBy };
    },

    async addComment(input) {
      const comment: Comment = { ...input, id: randomUUID() };
      const key = `${comment.replyTo === undefined ? 'comments' : 'replies'}:${comment.article}`;
      write(key, [...(onLeader<Comment[]>(key) ?? []), comment]);
      return comment;
    },
    async getComments(article) {
      const { value, servedBy } = await read<Comment[]>(`comments:${article}`);
      return { value: value ?? [], servedBy };
    },
    async getReplies(article) {
      const { value, servedBy } = await read<Comment[]>(`replies:${article}`);
      return { value: value ?? [], servedBy };
    },

    participants: { users, permissions },
    decisionLog: new MemoryDecisionLog(),
    async insertUser(branch, { email, name }) {
      await branch.query(INSERT_USER, [email, name]);
    },
    async takeSeat(branch, { email, team, role }) {
      // What the PostgreSQL version's CHECK constraint does, on the committed rows.
      const seats = committed(permissions, INSERT_TEAM).find(([t]) => t === team)?.[1];
      const used = committed(permissions, INSERT_GRANT).filter(([, t]) => t === team).length;
      if (typeof seats !== 'number' || used >= seats) {
        throw new RefusedError(`team "${team}" has no seat left`);
      }
      await branch.query(INSERT_GRANT, [email, team, role]);
    },
    async commitAlone(database, fn) {
      // The memory participant commits only through prepare; prepare and commit right after
      // each other are a one-phase commit of this database alone.
      const participant = store.participants[database];
      const branch = await participant.begin();
      try {
        await fn(branch);
      } catch (error) {
        await branch.rollback();
        throw error;
      }
      const gid = `plain:${randomUUID()}`;
      await branch.prepare(gid);
      await participant.commitPrepared(gid);
    },
    createTeam(team, seats) {
      return store.commitAlone('permissions', async (branch: TransactionBranch) => {
        await branch.query(INSERT_TEAM, [team, seats]);
      });
    },
    async getAccount(email): Promise<Account> {
      const user = committed(users, INSERT_USER).find(([e]) => e === email);
      const grants = committed(permissions, INSERT_GRANT)
        .filter(([e]) => e === email)
        .map(([, team, role]) => ({ team: String(team), role: String(role) }));
      return { user: user && { email, name: String(user[1]) }, grants };
    },

    leases: new MemoryLeaseManager(),
    async writeFrontPage(resource, page, fencingToken) {
      if (fencingToken === undefined) return write(`front-page:${resource}`, page);
      await fence.write(resource, fencingToken, () => write(`front-page:${resource}`, page));
    },
    async getFrontPage(resource, { leader: fromLeader = false } = {}) {
      if (!fromLeader) return read<FrontPage>(`front-page:${resource}`);
      const value = onLeader<FrontPage>(`front-page:${resource}`);
      return { value, servedBy: { node: leader, replica: false } };
    },

    draftBodies,
    draftHeadlines,
    async savePlainDraft(id, draft) {
      write(`draft:${id}`, draft);
    },
    async getPlainDraft(id) {
      return onLeader(`draft:${id}`);
    },

    async nodes(): Promise<NodeState[]> {
      const { leader: top, replicas } = db.snapshot();
      return [top, ...replicas].map((node) => ({
        name: node.name,
        role: node.name === leader ? 'leader' : 'replica',
        position: node.position?.lsn.toString(),
        lagMs: node.lagMs,
      }));
    },
    waitForReplicas: (count, timeoutMs) =>
      waitForReplicas(db, db.replicaNames, db.position(leader), count, timeoutMs),

    async close() {
      await Promise.all([
        db.close(),
        sessionStore.close(),
        draftBodies.close(),
        draftHeadlines.close(),
        store.leases.close(),
        fence.close(),
        users.close(),
        permissions.close(),
        store.decisionLog.close(),
      ]);
    },
  };
  return store;
}

import {
  type BranchStatus,
  CausewayError,
  configError,
  ErrorCode,
  functionOption,
  invalidInput,
  knownOptions,
  type Participant,
  type ParticipantBranch,
  type ParticipantQueryResult,
  type PreparedBranch,
  type PreparedInfo,
  sleep,
} from '../../src/adapter-kit.js';

/** A statement a branch ran, as recorded by `MemoryParticipant`. */
export interface MemoryStatement {
  readonly text: string;
  readonly values: readonly unknown[];
}

/** A committed branch: its statements in order (the participant's "data"). */
export interface MemoryCommit {
  readonly xid: string;
  /** The gid it was prepared under; `''` for a one-phase commit. */
  readonly gid: string;
  readonly statements: readonly MemoryStatement[];
}

/**
 * Operations whose next call can be made to fail. `prepare` is a "no" vote and `local-commit`
 * a refused one-phase commit (nothing committed); the `-reply-lost` variants perform the
 * operation and then fail, as a connection that drops after the server acted would.
 * (`commit` is `commitPrepared`.)
 */
export type MemoryFailurePoint =
  | 'begin'
  | 'query'
  | 'prepare'
  | 'prepare-reply-lost'
  | 'local-commit'
  | 'local-commit-reply-lost'
  | 'commit'
  | 'commit-reply-lost'
  | 'rollback'
  | 'list';

export interface MemoryParticipantOptions {
  /** Shown as `database` in listings. Default: `'memory'`. */
  name?: string;
  /** Clock for prepared times and ages, in milliseconds. Default: `Date.now`. */
  now?: () => number;
}

interface Prepared {
  readonly xid: string;
  readonly preparedAt: number;
  readonly statements: MemoryStatement[];
}

const DISALLOWED = "'";

/** Statements a memory branch counts as reads (for its read-only vote). */
const READ = /^\s*SELECT\b/i;

/**
 * An in-process participant for tests and demos. A branch records the statements it runs
 * (`query` resolves to no rows) and `commits` keeps what was committed, so a test can check
 * all-or-nothing. A branch whose statements all start with `SELECT` votes read-only. Failures are injected with `failNext(point)`, `delayNext(point, ms)` or
 * `unreachable = true`.
 */
export class MemoryParticipant implements Participant {
  /** While true every operation rejects, as an unreachable server would. */
  unreachable = false;
  private readonly name: string;
  private readonly now: () => number;
  private readonly failures = new Map<MemoryFailurePoint, Error[]>();
  private readonly delays = new Map<MemoryFailurePoint, number[]>();
  private readonly prepared = new Map<string, Prepared>();
  private readonly statuses = new Map<string, BranchStatus>();
  private readonly committed: MemoryCommit[] = [];
  private nextXid = 1000n;

  constructor(options: MemoryParticipantOptions = {}) {
    const { name = 'memory', now } = knownOptions(options, 'MemoryParticipant', ['name', 'now']);
    if (typeof name !== 'string' || name === '') {
      throw configError('MemoryParticipant: name must be a non-empty string');
    }
    this.name = name;
    this.now = functionOption('MemoryParticipant: now', now, Date.now);
  }

  /** Makes the next call at `point` fail with `error` (default: a connection-like error). */
  failNext(point: MemoryFailurePoint, error?: Error): void {
    const queue = this.failures.get(point) ?? [];
    queue.push(error ?? new Error(`simulated ${point} failure`));
    this.failures.set(point, queue);
  }

  /** Makes the next call at `point` take `ms` longer (a slow or stalled server). */
  delayNext(point: MemoryFailurePoint, ms: number): void {
    const queue = this.delays.get(point) ?? [];
    queue.push(ms);
    this.delays.set(point, queue);
  }

  /** What was committed, in commit order. */
  get commits(): readonly MemoryCommit[] {
    return this.committed;
  }

  /** Gids currently prepared. */
  preparedGids(): string[] {
    return [...this.prepared.keys()];
  }

  async begin(): Promise<ParticipantBranch> {
    await this.delay('begin');
    this.check('begin');
    const xid = String(this.nextXid++);
    this.statuses.set(xid, 'in progress');
    const statements: MemoryStatement[] = [];
    let open = true;
    const end = (status: BranchStatus) => {
      open = false;
      this.statuses.set(xid, status);
    };
    return {
      query: async <Row>(text: string, values: readonly unknown[] = []) => {
        if (!open) throw invalidInput('the branch is finished');
        await this.delay('query');
        this.check('query');
        statements.push({ text, values: [...values] });
        return { rows: [] as Row[], rowCount: 0 } satisfies ParticipantQueryResult<Row>;
      },
      prepare: async (gid: string): Promise<PreparedInfo> => {
        if (!open) throw invalidInput('the branch is finished');
        await this.delay('prepare');
        if (gid.includes(DISALLOWED) || this.prepared.has(gid)) {
          end('aborted');
          throw new CausewayError(ErrorCode.TXN_ABORTED, 'invalid or duplicate gid');
        }
        const voteNo = this.take('prepare');
        if (voteNo !== undefined || this.unreachable) {
          end('aborted');
          throw new CausewayError(ErrorCode.TXN_ABORTED, 'the participant voted no', {
            cause: voteNo ?? new Error('unreachable'),
          });
        }
        open = false;
        this.prepared.set(gid, { xid, preparedAt: this.now(), statements });
        this.check('prepare-reply-lost');
        return { xid };
      },
      rollback: async () => {
        if (open) end('aborted');
      },
      commit: async (lastStatement?: string) => {
        if (!open) throw invalidInput('the branch is finished');
        if (lastStatement !== undefined) statements.push({ text: lastStatement, values: [] });
        await this.delay('local-commit');
        const refused = this.take('local-commit');
        if (refused !== undefined || this.unreachable) {
          end('aborted');
          throw new CausewayError(ErrorCode.TXN_ABORTED, 'the participant did not commit', {
            cause: refused ?? new Error('unreachable'),
          });
        }
        end('committed');
        this.committed.push({ xid, gid: '', statements });
        this.check('local-commit-reply-lost');
      },
      isReadOnly: async () => {
        if (!open) throw invalidInput('the branch is finished');
        this.check('query');
        return statements.every((statement) => READ.test(statement.text));
      },
    };
  }

  async commitPrepared(gid: string): Promise<boolean> {
    await this.delay('commit');
    this.check('commit');
    const branch = this.prepared.get(gid);
    if (branch === undefined) return false;
    this.prepared.delete(gid);
    this.statuses.set(branch.xid, 'committed');
    this.committed.push({ xid: branch.xid, gid, statements: branch.statements });
    this.check('commit-reply-lost');
    return true;
  }

  async rollbackPrepared(gid: string): Promise<boolean> {
    this.check('rollback');
    const branch = this.prepared.get(gid);
    if (branch === undefined) return false;
    this.prepared.delete(gid);
    this.statuses.set(branch.xid, 'aborted');
    return true;
  }

  async listPrepared(prefix: string): Promise<PreparedBranch[]> {
    this.check('list');
    const now = this.now();
    return [...this.prepared]
      .filter(([gid]) => gid.startsWith(prefix))
      .map(([gid, branch]) => ({
        gid,
        xid: branch.xid,
        preparedAt: new Date(branch.preparedAt),
        ageMs: now - branch.preparedAt,
        owner: '',
        database: this.name,
      }));
  }

  async branchStatus(xid: string): Promise<BranchStatus> {
    if (this.unreachable) throw new Error(`${this.name} is unreachable`);
    return this.statuses.get(xid) ?? 'unknown';
  }

  async close(): Promise<void> {}

  private async delay(point: MemoryFailurePoint): Promise<void> {
    const ms = this.delays.get(point)?.shift();
    if (ms !== undefined) await sleep(ms);
  }

  private take(point: MemoryFailurePoint): Error | undefined {
    return this.failures.get(point)?.shift();
  }

  private check(point: MemoryFailurePoint): void {
    if (this.unreachable) throw new Error(`${this.name} is unreachable`);
    const failure = this.take(point);
    if (failure !== undefined) throw failure;
  }
}

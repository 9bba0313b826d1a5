import {
  type Decision,
  type DecisionEntry,
  type DecisionLog,
  type DecisionRecord,
  invalidInput,
  isSafeGidComponent,
  knownOptions,
  type Participant,
  type ParticipantBranch,
} from '../../src/adapter-kit.js';
import { PgParticipant } from './participant.js';
import { type PgQueryablePool, quoteTable, resolvePool, sqlState, TableCreator } from './sql.js';
import { gidLiteral } from './txn-sql.js';

/** Default table of `PgDecisionLog`. */
export const DEFAULT_PG_DECISION_TABLE = 'causeway_2pc_decisions';

/** The decision table, for teams that run their own migrations (idempotent). */
export function pgDecisionLogTableSql(table = DEFAULT_PG_DECISION_TABLE): string {
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(table, 'pgDecisionLogTableSql')} (
  gid text PRIMARY KEY,
  decision text NOT NULL CHECK (decision IN ('commit', 'abort')),
  participants text[] NOT NULL,
  decided_at timestamptz NOT NULL DEFAULT now()
)`;
}

export interface PgDecisionLogOptions {
  /**
   * A `pg` Pool on the database that keeps decisions; usually one participant's database, so
   * the log is exactly as available as that participant. The caller keeps ownership.
   */
  pool: PgQueryablePool;
  /** Table name (`name` or `schema.name`). Default: `causeway_2pc_decisions`. */
  table?: string;
  /** Create the table on first use (idempotent). Default: `true`. */
  createTable?: boolean;
}

function toRecord(row: Record<string, unknown>): DecisionRecord {
  return {
    gid: String(row['gid']),
    decision: row['decision'] as Decision,
    participants: row['participants'] as string[],
    decidedAt: row['decided_at'] as Date,
    ageMs: Math.max(0, Number(row['age_ms'])),
  };
}

const UNIQUE_VIOLATION = '23505';
const COLUMNS = 'gid, decision, participants, decided_at';
const AGE = '(extract(epoch FROM now() - decided_at) * 1000)::float8 AS age_ms';

/**
 * Decisions in a PostgreSQL table. Recording is a plain insert (one statement; the primary key
 * makes it write-once) and, only when a decision already exists, a read of it; either way it
 * returns the decision that holds. (A plain insert measured faster than `ON CONFLICT DO
 * NOTHING`, whose speculative insertion costs on every call to save work only on conflicts.) The commit decision is durable once that statement
 * commits (with the server's `synchronous_commit`).
 */
export class PgDecisionLog implements DecisionLog {
  private readonly pool: PgQueryablePool;
  private readonly sql: {
    record: string;
    recordMany: string;
    get: string;
    list: string;
    forget: string;
  };
  private readonly table: TableCreator;
  private readonly quoted: string;

  constructor(options: PgDecisionLogOptions) {
    knownOptions(options, 'PgDecisionLog', ['pool', 'table', 'createTable']);
    this.pool = resolvePool(options.pool, 'PgDecisionLog');
    const table = options.table ?? DEFAULT_PG_DECISION_TABLE;
    const quoted = quoteTable(table, 'PgDecisionLog');
    this.quoted = quoted;
    this.table = new TableCreator(
      this.pool,
      (options.createTable ?? true) ? pgDecisionLogTableSql(table) : undefined,
    );
    this.sql = {
      record: `INSERT INTO ${quoted} (gid, decision, participants) VALUES ($1, $2, $3)
        RETURNING decided_at`,
      // In gid order, so concurrent batches take their key locks in one order. Participant
      // names never contain a comma (gid components), so a joined list splits back exactly.
      recordMany: `INSERT INTO ${quoted} (gid, decision, participants)
        SELECT gid, decision, string_to_array(names, ',')
          FROM unnest($1::text[], $2::text[], $3::text[]) AS entry(gid, decision, names)
         ORDER BY gid
        ON CONFLICT (gid) DO NOTHING
        RETURNING gid, decided_at`,
      get: `SELECT ${COLUMNS}, ${AGE} FROM ${quoted} WHERE gid = $1`,
      list: `SELECT ${COLUMNS}, ${AGE} FROM ${quoted} WHERE starts_with(gid, $1) ORDER BY decided_at`,
      forget: `DELETE FROM ${quoted} WHERE gid = ANY($1::text[])`,
    };
  }

  async record(
    gid: string,
    decision: Decision,
    participants: readonly string[],
  ): Promise<DecisionRecord> {
    if (!this.table.ready) await this.table.ensure();
    try {
      const row = (await this.pool.query(this.sql.record, [gid, decision, [...participants]]))
        .rows[0];
      return { gid, decision, participants, decidedAt: row?.['decided_at'] as Date, ageMs: 0 };
    } catch (error) {
      if (sqlState(error) !== UNIQUE_VIOLATION) throw error;
    }
    // A decision exists (the insert waited for a concurrent writer to commit): it holds.
    const existing = await this.get(gid);
    if (existing === undefined) throw new Error(`decision for ${gid} vanished while recording`);
    return existing;
  }

  /**
   * Group commit: one statement for every entry. Entries whose gid already has a decision are
   * skipped by the insert (after waiting for a concurrent writer of that gid to finish) and
   * read back, so each gets the decision that holds, as with `record`.
   */
  async recordMany(entries: readonly DecisionEntry[]): Promise<DecisionRecord[]> {
    if (!this.table.ready) await this.table.ensure();
    const inserted = new Map<string, Date>();
    const result = await this.pool.query(this.sql.recordMany, [
      entries.map((entry) => entry.gid),
      entries.map((entry) => entry.decision),
      entries.map((entry) => entry.participants.join(',')),
    ]);
    for (const row of result.rows) inserted.set(String(row['gid']), row['decided_at'] as Date);
    return Promise.all(
      entries.map(async (entry) => {
        const decidedAt = inserted.get(entry.gid);
        if (decidedAt !== undefined) return { ...entry, decidedAt, ageMs: 0 };
        const existing = await this.get(entry.gid);
        if (existing === undefined) {
          throw new Error(`decision for ${entry.gid} vanished while recording`);
        }
        return existing;
      }),
    );
  }

  /** Creates the table (with `createTable`), before a transaction's branches hold connections. */
  ready(): Promise<void> {
    return this.table.ensure();
  }

  /** True for a `PgParticipant` given the same pool (hence the same database). */
  colocatedWith(participant: Participant): boolean {
    return participant instanceof PgParticipant && participant.pool === this.pool;
  }

  /**
   * Commits `branch` with the decision row inserted just before, in one round trip (a plain
   * insert: if a decision exists, or one is being written, it fails, after waiting, and the
   * branch does not commit). The values are written as literals, which only gid characters
   * make safe: anything else is `INVALID_INPUT`.
   */
  async commitInBranch(
    branch: ParticipantBranch,
    gid: string,
    participants: readonly string[],
  ): Promise<void> {
    if (typeof branch.commit !== 'function') {
      throw invalidInput('the branch cannot commit in one phase');
    }
    for (const name of participants) {
      if (!isSafeGidComponent(name)) throw invalidInput('participant names are gid components');
    }
    if (!this.table.ready) await this.table.ensure();
    const names = participants.map((name) => `'${name}'`).join(', ');
    await branch.commit(
      `INSERT INTO ${this.quoted} (gid, decision, participants) ` +
        `VALUES (${gidLiteral(gid)}, 'commit', ARRAY[${names}]::text[])`,
    );
  }

  async get(gid: string): Promise<DecisionRecord | undefined> {
    if (!this.table.ready) await this.table.ensure();
    const row = (await this.pool.query(this.sql.get, [gid])).rows[0];
    return row === undefined ? undefined : toRecord(row);
  }

  async list(prefix: string): Promise<DecisionRecord[]> {
    if (!this.table.ready) await this.table.ensure();
    return (await this.pool.query(this.sql.list, [prefix])).rows.map(toRecord);
  }

  async forget(gids: readonly string[]): Promise<void> {
    if (gids.length === 0) return;
    if (!this.table.ready) await this.table.ensure();
    await this.pool.query(this.sql.forget, [[...gids]]);
  }

  async close(): Promise<void> {}
}

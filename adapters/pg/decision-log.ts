import type { Decision, DecisionLog, DecisionRecord } from '../../src/txn/decision-log.js';
import { type PgTxnPool, quotePgTable, resolvePgTxnPool, single, sqlState } from './txn-sql.js';

/** Default table of `PgDecisionLog`. */
export const DEFAULT_PG_DECISION_TABLE = 'causeway_2pc_decisions';

/** The decision table, for teams that run their own migrations (idempotent). */
export function pgDecisionLogTableSql(table = DEFAULT_PG_DECISION_TABLE): string {
  return `CREATE TABLE IF NOT EXISTS ${quotePgTable(table, 'pgDecisionLogTableSql')} (
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
  pool: PgTxnPool;
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
  private readonly pool: PgTxnPool;
  private readonly table: string;
  private readonly createTable: boolean;
  private readonly sql: { record: string; get: string; list: string; forget: string };
  private created: Promise<void> | undefined;
  /** Set once the table exists (or creating it is off), so later calls skip even the await. */
  private tableReady: boolean;

  constructor(options: PgDecisionLogOptions) {
    this.pool = resolvePgTxnPool(options?.pool, 'PgDecisionLog');
    const table = options.table ?? DEFAULT_PG_DECISION_TABLE;
    this.table = table;
    const quoted = quotePgTable(table, 'PgDecisionLog');
    this.createTable = options.createTable ?? true;
    this.tableReady = !this.createTable;
    this.sql = {
      record: `INSERT INTO ${quoted} (gid, decision, participants) VALUES ($1, $2, $3)
        RETURNING decided_at`,
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
    if (!this.tableReady) await this.ready();
    try {
      const row = single(await this.pool.query(this.sql.record, [gid, decision, [...participants]]))
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

  async get(gid: string): Promise<DecisionRecord | undefined> {
    if (!this.tableReady) await this.ready();
    const row = single(await this.pool.query(this.sql.get, [gid])).rows[0];
    return row === undefined ? undefined : toRecord(row);
  }

  async list(prefix: string): Promise<DecisionRecord[]> {
    if (!this.tableReady) await this.ready();
    return single(await this.pool.query(this.sql.list, [prefix])).rows.map(toRecord);
  }

  async forget(gids: readonly string[]): Promise<void> {
    if (gids.length === 0) return;
    if (!this.tableReady) await this.ready();
    await this.pool.query(this.sql.forget, [[...gids]]);
  }

  async close(): Promise<void> {}

  /**
   * Creates the table once. Two sessions creating it at once can collide in the catalog
   * (23505/42P07); it exists then. A failure is not cached, so the next call tries again.
   */
  private ready(): Promise<void> {
    if (!this.createTable) return Promise.resolve();
    this.created ??= this.pool.query(pgDecisionLogTableSql(this.table)).then(
      () => {
        this.tableReady = true;
      },
      (error: unknown) => {
        const code = sqlState(error);
        if (code === '23505' || code === '42P07') {
          this.tableReady = true;
          return;
        }
        this.created = undefined;
        throw error;
      },
    );
    return this.created;
  }
}

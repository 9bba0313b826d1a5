import pg from 'pg';
import {
  PRIMARY_ONLY_FUNCTIONS,
  SqlClassifier,
  type SqlClassifierOptions,
} from '../../adapters/pg/classify/index.js';
import { CORPUS_SCHEMA, CORPUS_SCHEMA_SQL, type CorpusStatement } from './sql-corpus.js';

/**
 * The differential soundness check of the classifier on a real primary and hot standby: every
 * statement of a corpus is classified, and what PostgreSQL itself does with it is the oracle:
 * - a statement judged read-only runs on the standby inside `BEGIN ... ROLLBACK` and must
 *   succeed (no "cannot execute ... in a read-only transaction", SQLSTATE 25006, nor any other
 *   error), call no volatile or primary-only function according to the plan PostgreSQL makes for
 *   it (`EXPLAIN (VERBOSE)` names every function it resolved, checked against `pg_proc`), and
 *   leave the standby connection as it was (settings, advisory locks, listened channels);
 * - a single statement judged not read-only runs on another standby connection: when it succeeds
 *   there and its plan calls nothing volatile, it was read-only after all, an offload lost.
 */

export interface DifferentialFinding {
  readonly sql: string;
  /** What went wrong (unsound) or the classifier's reason (lost offload). */
  readonly detail: string;
}

export interface DifferentialReport {
  readonly statements: number;
  /** Single statements the oracle found read-only. */
  readonly readOnly: number;
  /** Statements the classifier sent to the replica. */
  readonly routed: number;
  readonly unsound: readonly DifferentialFinding[];
  readonly lostOffload: readonly DifferentialFinding[];
}

export interface DifferentialOptions {
  readonly primaryUrl: string;
  /** The hot standby that is not delayed. */
  readonly replicaUrl: string;
  readonly corpus: readonly CorpusStatement[];
  /** Options of the classifier under test. Default: none. */
  readonly classifier?: SqlClassifierOptions;
}

const SEARCH_PATH = `-c search_path=${CORPUS_SCHEMA},public -c statement_timeout=5000`;

/** What must not change on the standby connection that runs routed statements. */
const STATE_SQL = `SELECT current_setting('search_path') AS search_path,
  current_setting('statement_timeout') AS statement_timeout,
  current_setting('causeway.probe', true) AS probe,
  current_setting('application_name') AS application_name,
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int
    AS advisory_locks,
  (SELECT count(*) FROM pg_listening_channels())::int AS listening`;

export async function runDifferential(options: DifferentialOptions): Promise<DifferentialReport> {
  const primary = new pg.Client({ connectionString: options.primaryUrl, options: SEARCH_PATH });
  const checked = new pg.Client({ connectionString: options.replicaUrl, options: SEARCH_PATH });
  const probe = new pg.Client({ connectionString: options.replicaUrl, options: SEARCH_PATH });
  await Promise.all([primary.connect(), checked.connect(), probe.connect()]);
  try {
    await primary.query(`BEGIN; ${CORPUS_SCHEMA_SQL}; COMMIT`);
    await replicated(primary, checked);
    const classifier = new SqlClassifier({ ...options.classifier, cacheSize: 0 });
    classifier.useCatalog((sql) => primary.query(sql));
    await classifier.ready();
    const volatile = await volatileNames(primary);
    const baseline = await state(checked);

    const unsound: DifferentialFinding[] = [];
    const lostOffload: DifferentialFinding[] = [];
    let readOnly = 0;
    let routed = 0;
    for (const { sql, kind } of options.corpus) {
      const verdict = classifier.classify(sql);
      if (verdict.readOnly) {
        routed++;
        const failed = await runInRollback(checked, sql);
        const calls = await plannedVolatileCalls(primary, sql, verdict.command, volatile);
        const after = await state(checked);
        const problem =
          failed ??
          (calls === undefined ? 'no plan' : undefined) ??
          (calls !== undefined && calls.length > 0 ? `calls ${calls.join(', ')}` : undefined) ??
          (after !== baseline ? `changed the connection: ${after}` : undefined);
        if (problem === undefined) readOnly++;
        else unsound.push({ sql, detail: problem });
      } else if (kind === 'query' || kind === 'write') {
        // Only single statements can be read-only; the oracle decides whether this one was.
        if ((await runInRollback(probe, sql)) !== undefined) continue;
        const calls = await plannedVolatileCalls(primary, sql, verdict.command, volatile);
        if (calls === undefined || calls.length > 0) continue;
        readOnly++;
        lostOffload.push({ sql, detail: verdict.reason });
      }
    }
    return { statements: options.corpus.length, readOnly, routed, unsound, lostOffload };
  } finally {
    await primary.query(`DROP SCHEMA IF EXISTS ${CORPUS_SCHEMA} CASCADE`).catch(() => {});
    await Promise.all([primary.end(), checked.end(), probe.end()]);
  }
}

/** Waits until the standby has replayed everything the primary has written so far. */
async function replicated(primary: pg.Client, replica: pg.Client): Promise<void> {
  const { rows } = await primary.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  for (let i = 0; i < 500; i++) {
    const caughtUp = await replica.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [
      rows[0].lsn,
    ]);
    if (caughtUp.rows[0].ok === true) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the standby did not replay the corpus schema');
}

/** Runs `sql` in a transaction rolled back; the error (with its SQLSTATE), or undefined. */
async function runInRollback(client: pg.Client, sql: string): Promise<string | undefined> {
  await client.query('BEGIN');
  try {
    await client.query(sql);
    return undefined;
  } catch (error) {
    const { code, message } = error as { code?: string; message?: string };
    return `${code ?? 'no SQLSTATE'}: ${message}`;
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Names of volatile functions (`pg_proc`) and of the primary-only list. */
async function volatileNames(primary: pg.Client): Promise<ReadonlySet<string>> {
  const { rows } = await primary.query(
    "SELECT DISTINCT proname FROM pg_proc WHERE provolatile = 'v'",
  );
  const operators = await primary.query(
    "SELECT count(*)::int AS n FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode WHERE p.provolatile = 'v'",
  );
  // The plan shows operators as symbols: the check relies on none calling a volatile function.
  if (operators.rows[0].n !== 0) throw new Error('a volatile operator exists: extend the oracle');
  return new Set([...rows.map((row) => String(row.proname)), ...PRIMARY_ONLY_FUNCTIONS]);
}

/**
 * The volatile or primary-only functions in the plan PostgreSQL makes for `sql` (every function
 * it resolved, deparsed in `EXPLAIN (VERBOSE)`), or undefined when it cannot plan it. `SHOW`
 * has no plan and calls nothing.
 */
async function plannedVolatileCalls(
  primary: pg.Client,
  sql: string,
  command: string,
  volatile: ReadonlySet<string>,
): Promise<string[] | undefined> {
  if (command === 'show') return [];
  const statement = command === 'explain' ? sql.replace(/^\s*explain\s+/i, '') : sql;
  let plan: string;
  try {
    const { rows } = await primary.query(`EXPLAIN (VERBOSE, FORMAT JSON) ${statement}`);
    plan = JSON.stringify(rows[0]['QUERY PLAN']);
  } catch {
    return undefined;
  }
  // Literals may hold anything: only code counts.
  const code = plan.replace(/'(?:[^'\\]|\\.|'')*'/g, "''");
  const called = [...code.matchAll(/([a-z_][a-z0-9_$]*)\\?"?\(/g)].map((match) => match[1]!);
  return [...new Set(called.filter((name) => volatile.has(name)))];
}

/** The standby connection's state as one comparable string. */
async function state(client: pg.Client): Promise<string> {
  const { rows } = await client.query(STATE_SQL);
  return JSON.stringify(rows[0]);
}

import {
  type BranchStatus,
  CausewayError,
  configError,
  ErrorCode,
  invalidInput,
  knownOptions,
  type Participant,
  type ParticipantBranch,
  type ParticipantQueryResult,
  type PreparedBranch,
  type PreparedInfo,
} from '../../src/adapter-kit.js';
import { unpreparableReason } from './classify/index.js';
import {
  connectClient,
  type PgQueryableClient,
  type PgQueryablePool,
  type PgRowsResult,
  resolvePool,
  sqlState,
} from './sql.js';
import {
  BEGIN_PREFIX,
  beginWith,
  commitRefused,
  gidLiteral,
  prepareRefused,
  single,
} from './txn-sql.js';

export interface PgParticipantOptions {
  /**
   * A `pg` Pool on the participant's database (the caller keeps ownership: `close()` leaves it
   * open). `options.max` is the pool's size (`pg.Pool` has it).
   */
  pool: PgQueryablePool & { readonly options?: { readonly max?: number } };
}

/** `pg`'s default pool size, used when the pool does not say. */
const PG_DEFAULT_POOL_SIZE = 10;
/** `pg_xact_status`, `pg_current_xact_id` and `pg_snapshot_xmax` arrived in PostgreSQL 13. */
const MIN_SERVER_VERSION = 130_000;
const HALF_XID_SPACE = 2n ** 31n;
/** SQLSTATE for "prepared transaction with identifier ... does not exist". */
const UNDEFINED_OBJECT = '42704';

/**
 * Rejects, before it is sent, a statement that would make the branch unpreparable or end its
 * transaction early (found by PostgreSQL's own parser, whatever the quoting).
 */
export async function assertPreparable(text: string): Promise<void> {
  const problem = await unpreparableReason(text);
  if (problem !== undefined) {
    throw invalidInput(
      `PostgreSQL cannot PREPARE a transaction that uses ${problem}; ` +
        'run this statement outside the distributed transaction',
    );
  }
}

/**
 * A PostgreSQL participant: each branch is a transaction on a client of its own from `pool`,
 * prepared with `PREPARE TRANSACTION`; phase two (`COMMIT PREPARED`/`ROLLBACK PREPARED`) runs on
 * any pooled connection, outside a transaction block. Needs PostgreSQL 13 or newer with
 * `max_prepared_transactions` at least the pool's size (checked on first use: `CONFIG`).
 */
export class PgParticipant implements Participant {
  /** The pool it was given (`PgDecisionLog` on the same pool is colocated with it). */
  readonly pool: PgQueryablePool;
  private readonly poolSize: number;
  private checked: Promise<void> | undefined;
  /** Set once the server passed the check, so later calls skip even the await. */
  private verified = false;

  constructor(options: PgParticipantOptions) {
    knownOptions(options, 'PgParticipant', ['pool']);
    this.pool = resolvePool(options.pool, 'PgParticipant');
    this.poolSize = options.pool.options?.max ?? PG_DEFAULT_POOL_SIZE;
  }

  async begin(): Promise<ParticipantBranch> {
    if (!this.verified) await this.ready();
    // BEGIN goes with the branch's first statement (see PgBranch), saving a round trip.
    return new PgBranch(await connectClient(this.pool));
  }

  async commitPrepared(gid: string): Promise<boolean> {
    return this.finish(`COMMIT PREPARED ${gidLiteral(gid)}`);
  }

  async rollbackPrepared(gid: string): Promise<boolean> {
    return this.finish(`ROLLBACK PREPARED ${gidLiteral(gid)}`);
  }

  async listPrepared(prefix: string): Promise<PreparedBranch[]> {
    if (!this.verified) await this.ready();
    // The xid column is 32 bits; its 64-bit form (what pg_xact_status takes) is the one
    // nearest the next xid (a branch may be prepared after the snapshot, so just above it).
    const result = await this.pool.query(
      `SELECT gid, prepared, owner, database, transaction::text AS xid,
                (extract(epoch FROM now() - prepared) * 1000)::float8 AS age_ms,
                pg_snapshot_xmax(pg_current_snapshot())::text AS next_xid
           FROM pg_prepared_xacts
          WHERE database = current_database() AND starts_with(gid, $1)
          ORDER BY prepared`,
      [prefix],
    );
    return result.rows.map((row) => {
      const next = BigInt(String(row['next_xid']));
      const low = BigInt(String(row['xid']));
      const ahead = low - (next & 0xffffffffn);
      const epoch =
        (next >> 32n) + (ahead > HALF_XID_SPACE ? -1n : ahead < -HALF_XID_SPACE ? 1n : 0n);
      return {
        gid: String(row['gid']),
        preparedAt: row['prepared'] as Date,
        ageMs: Math.max(0, Number(row['age_ms'])),
        xid: String((epoch << 32n) | low),
        owner: String(row['owner']),
        database: String(row['database']),
      };
    });
  }

  async branchStatus(xid: string): Promise<BranchStatus> {
    if (!/^\d{1,20}$/.test(xid)) throw invalidInput('an xid is a decimal number');
    const result = await this.pool.query('SELECT pg_xact_status($1::xid8) AS status', [xid]);
    const status = result.rows[0]?.['status'];
    return status === 'committed' || status === 'aborted' || status === 'in progress'
      ? status
      : 'unknown';
  }

  async close(): Promise<void> {}

  private async finish(sql: string): Promise<boolean> {
    if (!this.verified) await this.ready();
    try {
      await this.pool.query(sql);
      return true;
    } catch (error) {
      if (sqlState(error) === UNDEFINED_OBJECT) return false;
      throw error;
    }
  }

  /** Checks the server once: version and `max_prepared_transactions`. */
  private ready(): Promise<void> {
    this.checked ??= this.checkServer().then(
      () => {
        this.verified = true;
      },
      (error: unknown) => {
        this.checked = undefined;
        throw error;
      },
    );
    return this.checked;
  }

  private async checkServer(): Promise<void> {
    const row = (
      await this.pool.query(
        `SELECT current_setting('max_prepared_transactions')::int AS max_prepared,
                current_setting('server_version_num')::int AS version,
                current_database() AS database`,
      )
    ).rows[0];
    const maxPrepared = Number(row?.['max_prepared']);
    const version = Number(row?.['version']);
    const database = String(row?.['database']);
    if (version < MIN_SERVER_VERSION) {
      throw configError(
        `PgParticipant needs PostgreSQL 13 or newer (database "${database}" runs ${version})`,
      );
    }
    if (maxPrepared === 0 || maxPrepared < this.poolSize) {
      throw configError(
        `max_prepared_transactions is ${maxPrepared} on database "${database}"` +
          (maxPrepared === 0 ? ', so PREPARE TRANSACTION is disabled' : '') +
          `; set it to at least ${this.poolSize} (the pool's size), e.g. ` +
          `ALTER SYSTEM SET max_prepared_transactions = ${Math.max(this.poolSize, 64)}, ` +
          'then restart PostgreSQL (the setting only takes effect at server start; a standby ' +
          'needs a value at least as high as its primary)',
        { database, maxPreparedTransactions: maxPrepared, poolSize: this.poolSize },
      );
    }
  }
}

/**
 * Command tags of statements that cannot write by themselves. A branch that ran only these may
 * still have written (a function called by a SELECT), so `isReadOnly` then asks the server; a
 * branch that ran anything else is a writer without asking.
 */
const READ_COMMANDS = new Set(['SELECT', 'SHOW', 'FETCH', 'MOVE']);

/**
 * A transaction on one client; the client goes back to the pool on prepare, commit or rollback.
 * Its BEGIN is sent with the first statement, in the same round trip: with a parameterised
 * statement under one Sync (`beginWith`), without parameters as one simple query
 * `BEGIN;<statement>`. A branch ended before any statement ran never began.
 */
class PgBranch implements ParticipantBranch {
  private client: PgQueryableClient | undefined;
  /** BEGIN was sent (it may have run even if its reply was lost). */
  private begun = false;
  /** A statement other than `READ_COMMANDS` ran (it may have written). */
  private ranWriteCommand = false;

  constructor(client: PgQueryableClient) {
    this.client = client;
  }

  async query<Row = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<ParticipantQueryResult<Row>> {
    this.open();
    await assertPreparable(text);
    // Taken after the check, which yields: a branch rolled back meanwhile has given its
    // connection back, and the statement must not run there (it would commit on its own).
    const client = this.open();
    const params = values === undefined || values.length === 0 ? undefined : [...values];
    let results: PgRowsResult | PgRowsResult[];
    let first = 0;
    if (this.begun) {
      results = await client.query(text, params);
    } else {
      this.begun = true;
      first = 1;
      results = await this.beginWith(client, text, params);
    }
    if (!this.ranWriteCommand) {
      this.ranWriteCommand = (Array.isArray(results) ? results : [results])
        .slice(first)
        .some((one) => !READ_COMMANDS.has(one.command ?? ''));
    }
    const result = single(results);
    return { rows: result.rows as Row[], rowCount: result.rowCount ?? null };
  }

  /** BEGIN and the first statement in one round trip; BEGIN's result comes first. */
  private async beginWith(
    client: PgQueryableClient,
    text: string,
    params: unknown[] | undefined,
  ): Promise<PgRowsResult | PgRowsResult[]> {
    if (params !== undefined) {
      const pipelined = beginWith(client, text, params);
      if (pipelined !== undefined) return pipelined;
      await client.query('BEGIN');
      return [{ rows: [], command: 'BEGIN' }, await client.query(text, params)];
    }
    try {
      return await client.query(`${BEGIN_PREFIX}${text}`);
    } catch (error) {
      // Positions in the server's error point into the text it was sent: make them the caller's.
      const at = error as { position?: unknown };
      if (typeof at?.position === 'string' && Number(at.position) > BEGIN_PREFIX.length) {
        at.position = String(Number(at.position) - BEGIN_PREFIX.length);
      }
      throw error;
    }
  }

  /**
   * Read-only when no transaction id was assigned: PostgreSQL assigns one at the first write
   * (row change, row lock, DDL, nextval...), so a NULL `pg_current_xact_id_if_assigned()` means
   * nothing was written. Asked only after read commands alone.
   */
  isReadOnly(): Promise<boolean> | boolean {
    if (this.ranWriteCommand) return false;
    if (!this.begun) return true;
    return this.open()
      .query('SELECT pg_current_xact_id_if_assigned() IS NULL AS read_only')
      .then((result) => result.rows[0]?.['read_only'] === true);
  }

  async commit(lastStatement?: string): Promise<void> {
    const client = this.open();
    this.client = undefined;
    let command: string | undefined;
    try {
      // One round trip either way; `pg` answers two statements with two results.
      command = single(
        await client.query(
          `${this.beginIfNot()}${lastStatement === undefined ? '' : `${lastStatement}; `}COMMIT`,
        ),
      ).command;
    } catch (error) {
      const refused = commitRefused(error);
      if (refused === undefined) {
        // The connection is suspect: it is destroyed, which ends the transaction.
        client.release(error instanceof Error ? error : true);
        throw error;
      }
      // The server answered; a failed `lastStatement` left the transaction open, aborted.
      await endAndRelease(client);
      throw refused;
    }
    client.release();
    // COMMIT in a failed transaction rolls back instead (command ROLLBACK).
    if (command !== 'COMMIT') {
      throw new CausewayError(
        ErrorCode.TXN_ABORTED,
        'PostgreSQL rolled back at COMMIT: the transaction had failed',
      );
    }
  }

  async prepare(gid: string): Promise<PreparedInfo> {
    const literal = gidLiteral(gid);
    const client = this.open();
    this.client = undefined;
    try {
      // One round trip: the branch's 64-bit xid (to check its fate later), then the prepare.
      // Two statements, so `pg` answers with an array of two results.
      const results: PgRowsResult | PgRowsResult[] = await client.query(
        `${this.beginIfNot()}SELECT pg_current_xact_id()::text AS xid; PREPARE TRANSACTION ${literal}`,
      );
      const [selected, prepared] = (Array.isArray(results) ? results : [results]).slice(-2);
      // PREPARE in a failed transaction rolls back instead (command ROLLBACK).
      if (prepared?.command !== 'PREPARE') {
        throw new Error('the transaction had failed and was rolled back');
      }
      client.release();
      return { xid: String(selected?.rows[0]?.['xid']) };
    } catch (error) {
      await endAndRelease(client);
      throw prepareRefused(error);
    }
  }

  async rollback(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    if (this.begun) await endAndRelease(client);
    else client.release();
  }

  /** A branch that ran no statement begins as it ends (prepare or commit). */
  private beginIfNot(): string {
    const prefix = this.begun ? '' : BEGIN_PREFIX;
    this.begun = true;
    return prefix;
  }

  private open(): PgQueryableClient {
    if (this.client === undefined) throw invalidInput('the branch is already finished');
    return this.client;
  }
}

/** Ends whatever transaction the client is in and returns it (destroyed if broken). */
async function endAndRelease(client: PgQueryableClient): Promise<void> {
  try {
    await client.query('ROLLBACK');
    client.release();
  } catch (error) {
    client.release(error instanceof Error ? error : true);
  }
}

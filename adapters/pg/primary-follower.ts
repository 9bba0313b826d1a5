// Following the primary over a list of candidate hosts, as libpq's `target_session_attrs=
// read-write` does: which candidate accepts writes now, noticing a promotion, and fencing the
// node left behind so that no statement reaches it again.
import pg from 'pg';
import { CausewayError, ErrorCode } from '../../src/adapter-kit.js';
import { copyConfig, createCheckPool } from './pg-nodes.js';
import { isConnectionLoss } from './replica-errors.js';
import type { PgQueryablePool } from './sql.js';

/** One host that may be the primary. */
export interface PrimaryCandidate {
  /** `host:port`, for errors and events (never the password). */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** Its connection settings (the first candidate's, with this host and port). */
  readonly config: pg.PoolConfig;
  /** Checks and position reads: connections of their own. */
  readonly checks: pg.Pool;
}

/** A candidate's answer to the leader check (`LEADER_CHECK`), or the error it failed with. */
export type CandidateAnswer = { row: Record<string, unknown> } | { error: unknown };

/** What a following client needs from the follower (see following-client.ts). */
export interface PrimaryTarget {
  /** The candidate new connections go to, once known; rejects with `NO_PRIMARY` when none is. */
  target(): Promise<PrimaryCandidate>;
  /** Whether statements on a connection to `candidate` must be refused (it was left behind). */
  refuses(candidate: PrimaryCandidate): boolean;
  /**
   * A statement on `candidate` failed as read-only (SQLSTATE 25006): re-checks the candidates
   * at once and resolves true when `candidate` is no longer the primary. Until that check has
   * answered, statements to it are refused (fail fast) rather than sent.
   */
  readOnlySeen(candidate: PrimaryCandidate): Promise<boolean>;
  /** Calls `listener` with every candidate left behind (its connections must end). */
  onLeft(listener: (left: PrimaryCandidate) => void): void;
  /** Checks the candidates again soon (the primary refused a connection). */
  recheck(): void;
}

/** The error of a statement refused, or failed, because no candidate is known to be the primary. */
export function noPrimary(
  message: string,
  details: Readonly<Record<string, unknown>>,
  cause?: unknown,
): CausewayError {
  return new CausewayError(ErrorCode.NO_PRIMARY, message, {
    details,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The candidates of one primary and which of them is the primary now. The primary is the
 * candidate not in recovery (`pg_is_in_recovery()`) on the latest timeline seen (within one
 * cluster: the first primary found fixes the `system_identifier`). A candidate left behind is
 * never used again on the timeline it was left on: an old primary that was not demoted (a
 * partition, a stale virtual IP) stays behind the promoted node's newer timeline and is ignored.
 * The current primary is given up on evidence only: it is in recovery (demoted), another
 * candidate is primary on a newer timeline, or it refuses connections. A check that merely timed
 * out keeps it (a slow node is not a failover).
 */
export class PrimaryFollower implements PrimaryTarget {
  readonly candidates: readonly PrimaryCandidate[];
  readonly #check: (pool: PgQueryablePool) => Promise<Record<string, unknown>>;
  readonly #failoverPollIntervalMs: number;
  readonly #onChange: () => void;
  readonly #leftListeners: ((left: PrimaryCandidate) => void)[] = [];
  #current: PrimaryCandidate | undefined;
  /** Whether a discovery has answered yet (before: new connections wait for the first one). */
  #known = false;
  #stream: string | undefined;
  #epoch = 0;
  /** A candidate that failed a statement as read-only, refused until a check clears it. */
  #suspect: PrimaryCandidate | undefined;
  /** Discoveries started so far, and how many had when the suspicion arose. */
  #rounds = 0;
  #suspectSince = 0;
  #discovering: Promise<CandidateAnswer | undefined> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** `host:port` of the replicas' settings seen by `replicaPromoted`. */
  readonly #labels = new WeakMap<object, string>();

  /**
   * `configs`: each candidate's `pg` settings; `check` runs the leader check on a pool and
   * resolves with its row; `onChange` is called after the primary changed (or was lost).
   */
  constructor(options: {
    configs: readonly pg.PoolConfig[];
    connectTimeoutMs: number;
    failoverPollIntervalMs: number;
    check: (pool: PgQueryablePool) => Promise<Record<string, unknown>>;
    onChange: () => void;
  }) {
    this.candidates = options.configs.map((config) => {
      const { host, port } = hostOf(config);
      return {
        label: `${host}:${port}`,
        host,
        port,
        config,
        checks: createCheckPool(config, options.connectTimeoutMs),
      };
    });
    this.#check = options.check;
    this.#failoverPollIntervalMs = options.failoverPollIntervalMs;
    this.#onChange = options.onChange;
  }

  /** The primary now, if known. */
  get current(): PrimaryCandidate | undefined {
    return this.#current;
  }

  /** The current primary's check pool (after the first discovery); `NO_PRIMARY` when none. */
  async checks(): Promise<pg.Pool> {
    if (!this.#known) await this.discover();
    const current = this.#current;
    if (current === undefined) throw this.#noPrimary();
    return current.checks;
  }

  async target(): Promise<PrimaryCandidate> {
    if (!this.#known) await this.discover();
    const current = this.#current;
    if (current === undefined || current === this.#suspect) {
      // Fail fast, and look again in the background (a failover may have finished).
      this.#pollSoon();
      throw this.#noPrimary();
    }
    return current;
  }

  refuses(candidate: PrimaryCandidate): boolean {
    return candidate !== this.#current || candidate === this.#suspect;
  }

  async readOnlySeen(candidate: PrimaryCandidate): Promise<boolean> {
    if (candidate !== this.#current) return true;
    this.#suspect = candidate;
    this.#suspectSince = this.#rounds;
    // Only a check sent after the refusal can clear it: one in flight may predate the demotion.
    // A read-only error on a healthy primary (a write in a READ ONLY transaction, or with
    // default_transaction_read_only set) is cleared once such a check found it primary.
    await this.#discovering?.catch(() => {});
    await this.discover();
    return this.#current !== candidate || this.#suspect === candidate;
  }

  onLeft(listener: (left: PrimaryCandidate) => void): void {
    this.#leftListeners.push(listener);
  }

  recheck(): void {
    void this.discover();
  }

  /**
   * A replica (its connection settings) was found out of recovery: promoted, so the primary may
   * have moved; unless it is the current primary itself (listed as a replica too), look now.
   */
  replicaPromoted(config: pg.PoolConfig | undefined): void {
    if (config !== undefined && this.#current !== undefined) {
      let label = this.#labels.get(config);
      if (label === undefined) {
        const { host, port } = hostOf(config);
        label = `${host}:${port}`;
        this.#labels.set(config, label);
      }
      if (label === this.#current.label) return;
    }
    void this.discover();
  }

  /**
   * Checks every candidate (one check at a time per follower, shared by concurrent callers) and
   * settles which is the primary; resolves with the primary's answer (undefined: none known).
   */
  discover(): Promise<CandidateAnswer | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    this.#discovering ??= this.#discover().finally(() => {
      this.#discovering = undefined;
    });
    return this.#discovering;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#discovering?.catch(() => {});
    await Promise.allSettled(this.candidates.map((candidate) => candidate.checks.end()));
  }

  async #discover(): Promise<CandidateAnswer | undefined> {
    this.#rounds += 1;
    const round = this.#rounds;
    const answers: CandidateAnswer[] = await Promise.all(
      this.candidates.map((candidate) =>
        this.#check(candidate.checks).then(
          (row) => ({ row }),
          (error: unknown) => ({ error }),
        ),
      ),
    );
    const previous = this.#current;
    let chosen: PrimaryCandidate | undefined;
    let chosenEpoch = -1;
    let currentTimedOut = false;
    for (const [i, candidate] of this.candidates.entries()) {
      const answer = answers[i] as CandidateAnswer;
      if ('error' in answer) {
        // Slow is not gone: only a refused or cut connection gives up the current primary.
        if (candidate === previous && !isConnectionLoss(answer.error)) currentTimedOut = true;
        continue;
      }
      const epoch = writableEpoch(answer.row, this.#stream);
      if (epoch === undefined || epoch < this.#epoch) continue;
      if (epoch > chosenEpoch || (epoch === chosenEpoch && candidate === previous)) {
        chosen = candidate;
        chosenEpoch = epoch;
      }
    }
    if (chosen === undefined && currentTimedOut) chosen = previous;
    this.#known = true;
    if (chosen !== undefined && chosen !== previous) {
      const row = (answers[this.candidates.indexOf(chosen)] as { row: Record<string, unknown> })
        .row;
      this.#stream ??= row['stream'] as string;
    }
    if (chosen !== undefined && chosenEpoch > this.#epoch) this.#epoch = chosenEpoch;
    const answer = chosen === undefined ? undefined : answers[this.candidates.indexOf(chosen)];
    // A suspect is cleared by leaving it, or by a check sent after the refusal that found it
    // primary (not one that merely timed out on it).
    if (
      this.#suspect !== undefined &&
      (this.#suspect !== chosen || (round > this.#suspectSince && answer && 'row' in answer))
    ) {
      this.#suspect = undefined;
    }
    this.#current = chosen;
    if (chosen !== previous) {
      if (previous !== undefined) for (const listener of this.#leftListeners) listener(previous);
      this.#onChange();
    }
    if (chosen === undefined || this.#suspect !== undefined) this.#pollSoon();
    return answer;
  }

  /** While no primary is known, the candidates are checked every `failoverPollIntervalMs`. */
  #pollSoon(): void {
    if (this.#closed || this.#timer !== undefined || this.#failoverPollIntervalMs === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.discover();
    }, this.#failoverPollIntervalMs);
    this.#timer.unref();
  }

  #noPrimary(): CausewayError {
    return noPrimary(
      'No primary: no candidate accepts writes now (a failover is under way); the statement was not sent',
      { candidates: this.candidates.map((candidate) => candidate.label), executed: false },
    );
  }
}

/** The timeline of a leader-check row of a primary of `stream`; undefined for anything else. */
function writableEpoch(row: Record<string, unknown>, stream: string | undefined) {
  const walfile = row['walfile'];
  if (row['in_recovery'] !== false || typeof walfile !== 'string') return undefined;
  if (typeof row['stream'] !== 'string' || typeof row['lsn'] !== 'string') return undefined;
  if (stream !== undefined && row['stream'] !== stream) return undefined;
  // A WAL file name starts with the timeline in 8 hex digits.
  return Number.parseInt(walfile.slice(0, 8), 16);
}

/**
 * The host and port a `pg` client would connect to with `config` (a client object parses a
 * connection string and applies `pg`'s defaults; it opens nothing until `connect()`).
 */
export function hostOf(config: pg.PoolConfig): { host: string; port: number } {
  const client = new pg.Client(copyConfig(config));
  return { host: client.host, port: client.port };
}

const followers = new WeakMap<object, PrimaryFollower>();

/** Records that replica set `set` follows its primary with `follower` (see `followerOf`). */
export function registerFollower(set: object, follower: PrimaryFollower): void {
  followers.set(set, follower);
}

/** The follower of a replica set given a list of primary candidates; undefined for any other. */
export function followerOf(set: object): PrimaryTarget | undefined {
  return followers.get(set);
}

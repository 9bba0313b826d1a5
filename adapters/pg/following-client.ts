// The connections of a pool that follows the primary: each connects to the candidate that is the
// primary when it connects, refuses to send anything once that candidate is left behind, and
// turns a read-only failure caused by a demotion into `NO_PRIMARY`.
import pg from 'pg';
import type { ResolvedNode } from './pg-nodes.js';
import type { RawQuery } from './pg-types.js';
import {
  noPrimary,
  type PrimaryCandidate,
  type PrimaryFollower,
  type PrimaryTarget,
} from './primary-follower.js';
import { isConnectionLoss, sqlStateOf } from './replica-errors.js';
import type { PgQueryablePool } from './sql.js';

type Callback = (error: Error | undefined, ...rest: unknown[]) => unknown;

/**
 * Derives from `Base` a client class whose connections go to `follower`'s primary. `pg` reads
 * the host and port it connects to from the client's `host` and `port` when `connect()` runs,
 * so a client is pointed at the primary found then (every candidate shares the other settings).
 */
export function followingClientClass(
  Base: typeof pg.Client,
  follower: PrimaryTarget,
): typeof pg.Client {
  const superQuery = Base.prototype.query;
  const live = new Set<FollowingClient>();
  follower.onLeft((left) => {
    // The old primary is gone for this pool: end every connection to it, idle or checked out,
    // so that nothing more is written there (a checked-out client's next statement fails).
    for (const client of live) {
      if (client.candidate === left) void client.end().catch(() => {});
    }
  });
  class FollowingClient extends Base {
    candidate: PrimaryCandidate | undefined;

    // biome-ignore lint/suspicious/noExplicitAny: pg's overloads (promise or callback).
    override connect(callback?: any): any {
      const connecting = follower.target().then((candidate) => {
        this.candidate = candidate;
        this.host = candidate.host;
        this.port = candidate.port;
        return super.connect().then(
          async () => {
            // Ending a client while it connects would leave pg's connect callback unanswered
            // (and pg-pool waiting for it forever): a client joins the ended-on-move set only
            // once connected, and one whose primary was left meanwhile ends here instead.
            if (follower.refuses(candidate)) {
              await this.end().catch(() => {});
              throw noPrimary(
                `No primary: ${candidate.label} is no longer the primary; the statement was not sent`,
                { node: candidate.label, executed: false },
              );
            }
            live.add(this);
            this.once('end', () => live.delete(this));
          },
          (error: unknown) => {
            if (!isConnectionLoss(error)) throw error;
            // The primary refuses connections (stopped, restarting, gone): look again now, and
            // say so with the failover's code; nothing was sent.
            follower.recheck();
            throw noPrimary(
              `No primary: ${candidate.label} refuses connections; the statement was not sent`,
              { node: candidate.label, executed: false },
              error,
            );
          },
        );
      });
      if (callback === undefined) return connecting;
      connecting.then(
        () => callback(null),
        (error: Error) => callback(error),
      );
      return undefined;
    }

    // biome-ignore lint/suspicious/noExplicitAny: pg's overloads, passed through as given.
    override query(...args: any[]): any {
      const candidate = this.candidate;
      // Submittables (cursors, streams) and malformed calls: pg's own path.
      const last = args.length - 1;
      const callback = typeof args[last] === 'function' ? (args[last] as Callback) : undefined;
      const submittable = typeof (args[0] as { submit?: unknown } | null)?.submit === 'function';
      const raw = (...given: unknown[]) => (superQuery as RawQuery).apply(this, given);
      if (candidate === undefined || submittable) return raw(...args);
      if (follower.refuses(candidate)) {
        const error = noPrimary(
          `No primary: ${candidate.label} is no longer the primary; the statement was not sent`,
          { node: candidate.label, executed: false },
        );
        if (callback === undefined) return Promise.reject(error);
        queueMicrotask(() => callback(error));
        return undefined;
      }
      if (callback !== undefined) {
        args[last] = (error: Error | undefined, ...rest: unknown[]) => {
          if (sqlStateOf(error) !== '25006') return callback(error, ...rest);
          void demoted(candidate, error as Error).then((reported) => callback(reported, ...rest));
          return undefined;
        };
        return raw(...args);
      }
      return (raw(...args) as Promise<unknown>).catch(async (error: unknown) => {
        throw sqlStateOf(error) === '25006' ? await demoted(candidate, error as Error) : error;
      });
    }
  }

  /**
   * A statement refused as read-only (25006) did not run: nothing was written. It is not
   * retried here (the caller decides; a transaction it was part of is aborted anyway), and no
   * other statement goes to that node until a check says it is still the primary. When the
   * check finds it demoted, the caller gets `NO_PRIMARY` with the original error as its cause.
   */
  async function demoted(candidate: PrimaryCandidate, error: Error): Promise<Error> {
    if (!(await follower.readOnlySeen(candidate))) return error;
    return noPrimary(
      `No primary: ${candidate.label} is read-only (demoted, or a failover is under way); the statement did not run`,
      { node: candidate.label, executed: false },
      error,
    );
  }

  Object.defineProperty(FollowingClient, 'name', { value: `Following${Base.name}` });
  return FollowingClient as unknown as typeof pg.Client;
}

/**
 * The leader of a replica set over a list of candidates: its statements run on `given` (the
 * routed pool, whose connections follow the primary) or on a pool of its own that follows it;
 * its checks and position reads run on the current primary's check connections.
 */
export function followingLeader(
  follower: PrimaryFollower,
  given: PgQueryablePool | undefined,
): { resolved: ResolvedNode; checks: { pool: PgQueryablePool; end: () => Promise<void> } } {
  const config = (follower.candidates[0] as PrimaryCandidate).config;
  let pool = given;
  let end: (() => Promise<void>) | undefined;
  if (pool === undefined) {
    const own = new pg.Pool({ ...config, Client: followingClientClass(pg.Client, follower) });
    own.on('error', () => {});
    pool = own;
    end = () => own.end();
  }
  const checks: PgQueryablePool = {
    query: async (sql, values) => (await follower.checks()).query(sql, values),
    connect: async () => (await follower.checks()).connect(),
  };
  return {
    resolved: { name: 'primary', pool, config, end },
    checks: { pool: checks, end: () => follower.close() },
  };
}

/**
 * The scheduled "publisher" job: it composes the front page from the latest articles. Several
 * instances of the service run it, but only the holder of the lease may publish. A lease alone
 * is not enough: an instance that pauses (a long GC, a stalled VM) after taking the lease can
 * wake up after it expired and another instance took over, and still write. With fencing, the
 * storage checks the lease's token in the same step as the write and refuses the older one.
 */
import { ErrorCode, isCausewayError, type Lease, withSession } from 'causeway';
import type { EditorialStore, FrontPage } from './store.js';

export interface PublisherOptions {
  /** This instance's name (the lease holder). */
  worker: string;
  store: EditorialStore;
  /** The leased and fenced resource. */
  resource: string;
  /** Whether the storage checks the fencing token (Causeway on) or writes blindly (off). */
  fenced: boolean;
  /** Lease time to live. Default 10 000 ms. */
  leaseTtlMs?: number;
}

/** A run that holds the lease and has composed its page, but has not written it yet. */
export interface PendingRun {
  readonly lease: Lease;
  readonly page: FrontPage;
}

export class Publisher {
  readonly worker: string;
  readonly #store: EditorialStore;
  readonly #resource: string;
  readonly #fenced: boolean;
  readonly #leaseTtlMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  /** The lease the schedule holds between ticks (released on stop). */
  #held: Lease | undefined;

  constructor(options: PublisherOptions) {
    this.worker = options.worker;
    this.#store = options.store;
    this.#resource = options.resource;
    this.#fenced = options.fenced;
    this.#leaseTtlMs = options.leaseTtlMs ?? 10_000;
  }

  /**
   * Takes the lease (`LEASE_NOT_HELD` while another instance holds it) and composes the front
   * page from what the leader has now.
   */
  async begin(leaseTtlMs = this.#leaseTtlMs): Promise<PendingRun> {
    const lease = await this.#store.leases.acquire(this.#resource, {
      ttlMs: leaseTtlMs,
      holder: this.worker,
    });
    return this.#compose(lease);
  }

  async #compose(lease: Lease): Promise<PendingRun> {
    // A job has no request session: read the leader, so the page misses no article.
    const { value: articles } = await withSession(undefined, () => this.#store.listArticles(), {
      level: 'strong',
    });
    const page: FrontPage = {
      headlines: articles.slice(0, 5).map((article) => article.title),
      worker: this.worker,
      token: lease.token.toString(),
      publishedAt: new Date().toISOString(),
    };
    return { lease, page };
  }

  /** Writes the page: fenced by the lease's token, or blindly. `STALE_FENCING_TOKEN` if fenced out. */
  async commit(run: PendingRun): Promise<void> {
    await this.#store.writeFrontPage(
      this.#resource,
      run.page,
      this.#fenced ? run.lease.token : undefined,
    );
  }

  /**
   * One tick of the schedule: the instance that holds the lease renews it and publishes; the
   * others try to take it, and return false while it is held elsewhere.
   */
  async runOnce(): Promise<boolean> {
    let run: PendingRun;
    try {
      const renewed = await this.#held?.renew().catch((error: unknown) => {
        if (isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) return undefined;
        throw error;
      });
      run = renewed === undefined ? await this.begin() : await this.#compose(renewed);
    } catch (error) {
      this.#held = undefined;
      if (isCausewayError(error, ErrorCode.LEASE_NOT_HELD)) return false;
      throw error;
    }
    this.#held = run.lease;
    try {
      await this.commit(run);
    } catch (error) {
      // Another instance took over while this one composed the page: the storage refused.
      if (!isCausewayError(error, ErrorCode.STALE_FENCING_TOKEN)) throw error;
      this.#held = undefined;
      return false;
    }
    return true;
  }

  /** Runs `runOnce` every `intervalMs` (unref'd timer) until `stop()`; errors go to `onError`. */
  schedule(intervalMs: number, onError: (error: unknown) => void): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = setInterval(() => {
      if (this.#running !== undefined) return;
      this.#running = this.runOnce()
        .catch(onError)
        .finally(() => {
          this.#running = undefined;
        });
    }, intervalMs);
    this.#timer.unref();
  }

  /** Stops the schedule, waits for a tick in progress and gives up the lease it holds. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
    const held = this.#held;
    this.#held = undefined;
    // A lease that already expired or was taken over needs nothing; a failure only delays the
    // next holder until the lease expires.
    await held?.release().catch(() => {});
  }
}

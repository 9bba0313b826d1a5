interface Entry {
  readonly at: number;
  readonly fire: () => void;
}

/**
 * One timer for every deadline of a coordinator (transaction timeouts, prepare and commit
 * waits, retry delays) instead of a timer or two per transaction.
 *
 * Deadlines of the same duration expire in the order they were set, so each duration keeps an
 * insertion-ordered set: adding and cancelling are O(1), the earliest of a duration is its
 * first entry, and the one (unref'd) timer is armed for the earliest over all durations. A
 * cancelled entry is simply deleted; the timer, if armed for it, fires early, finds nothing due
 * and re-arms. Durations are few (the configured ones plus backoff steps).
 */
export class Deadlines {
  private readonly queues = new Map<number, Set<Entry>>();
  /** Pending sleeps (their wake-up and cancel functions), woken by `close()`. */
  private readonly sleepers = new Map<() => void, () => void>();
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Number.POSITIVE_INFINITY;
  private closed = false;

  /** Settles like `promise`, or rejects with `onTimeout()` after `ms`. */
  within<T>(promise: Promise<T>, ms: number, onTimeout: () => unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cancel = this.add(ms, () => reject(onTimeout()));
      promise.then(
        (value) => {
          cancel();
          resolve(value);
        },
        (error: unknown) => {
          cancel();
          reject(error);
        },
      );
    });
  }

  /** Resolves after `ms`, or at once when `close()` is called (so retry loops end). */
  sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        this.sleepers.delete(wake);
        resolve();
      };
      this.sleepers.set(wake, this.add(ms, wake));
    });
  }

  /**
   * Wakes every sleep now and makes later ones return at once. Deadlines set with `within`
   * still fire (transactions in flight keep their timeouts); the timer never holds the process.
   */
  close(): void {
    this.closed = true;
    for (const [wake, cancel] of this.sleepers) {
      cancel();
      wake();
    }
    this.sleepers.clear();
  }

  /** Schedules `fire` in `ms`; returns the cancel function. */
  private add(ms: number, fire: () => void): () => void {
    const duration = Math.max(0, Math.round(ms));
    const entry: Entry = { at: performance.now() + duration, fire };
    let queue = this.queues.get(duration);
    if (queue === undefined) {
      queue = new Set();
      this.queues.set(duration, queue);
    }
    queue.add(entry);
    if (entry.at < this.armedAt) this.arm(entry.at);
    return () => {
      const owner = this.queues.get(duration);
      if (owner?.delete(entry) && owner.size === 0) this.queues.delete(duration);
    };
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(() => this.expire(), Math.max(0, at - performance.now()));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const due: Entry[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const [duration, queue] of this.queues) {
      for (const entry of queue) {
        if (entry.at > now) {
          next = Math.min(next, entry.at);
          break;
        }
        queue.delete(entry);
        due.push(entry);
      }
      if (queue.size === 0) this.queues.delete(duration);
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
    for (const entry of due) entry.fire();
  }
}

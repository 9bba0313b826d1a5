// Coalesced position reads. A node's position (WAL insert location on the leader, replay location
// on a replica) only grows, so a position read that *starts* after a statement completed is at
// or past everything that statement saw or wrote. One such read can therefore serve every
// statement of that node that completed before it started: the floors stay sound while the
// extra round trip is shared by all the statements in flight.

let lastMark = 0;

/**
 * A point in this process's order of events: take one when a statement's result has arrived,
 * and pass it to `PositionProbe.after`. Marks only grow.
 */
export function nextMark(): number {
  lastMark += 1;
  return lastMark;
}

interface Started<T> {
  /** The mark taken just before the read was sent. */
  readonly mark: number;
  readonly result: Promise<T>;
}

/**
 * Position reads of one node, shared between callers. `after(mark)` resolves with the result of
 * a read that started after `mark` was taken: an existing one if one did, else a new one. At most
 * `concurrency` reads run at once; callers arriving while all run share the next one, which
 * starts as soon as one finishes.
 */
export class PositionProbe<T> {
  readonly #read: () => Promise<T>;
  readonly #concurrency: number;
  #latest: Started<T> | undefined;
  #running = 0;
  #queued: { promise: Promise<T>; start: () => void } | undefined;

  /** `read` reads the position once; `concurrency` (>= 1) caps the reads in flight. */
  constructor(read: () => Promise<T>, concurrency: number) {
    this.#read = read;
    this.#concurrency = Math.max(1, concurrency);
  }

  /** The result of a read that started after `mark` (rejects if that read failed). */
  after(mark: number): Promise<T> {
    const latest = this.#latest;
    if (latest !== undefined && latest.mark > mark) return latest.result;
    if (this.#running < this.#concurrency) return this.#start();
    if (this.#queued === undefined) {
      let start!: () => void;
      const promise = new Promise<T>((resolve, reject) => {
        start = () => {
          this.#queued = undefined;
          this.#start().then(resolve, reject);
        };
      });
      this.#queued = { promise, start };
    }
    return this.#queued.promise;
  }

  #start(): Promise<T> {
    const mark = nextMark();
    this.#running += 1;
    const result = this.#read().finally(() => {
      this.#running -= 1;
      this.#queued?.start();
    });
    // A failed read is not reused: the next caller starts a fresh one.
    const started: Started<T> = { mark, result };
    this.#latest = started;
    result.catch(() => {
      if (this.#latest === started) this.#latest = undefined;
    });
    return result;
  }
}

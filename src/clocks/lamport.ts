import { CausewayError, configError, ErrorCode, invalidInput } from '../errors.js';

/** A Lamport timestamp. Ordered by `counter`, then by `node` (see `compareLamportTimestamps`). */
export interface LamportTimestamp {
  readonly counter: number;
  readonly node: string;
}

/**
 * The largest counter a Lamport clock reaches: `Number.MAX_SAFE_INTEGER`, beyond which counters
 * would stop being exact. At a million events a second a clock needs 285 years to get there, so
 * reaching it means a peer sent a counter close to it; the clock then refuses to move
 * (`CLOCK_DRIFT`) rather than wrap around or lose precision.
 */
export const LAMPORT_MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/**
 * The total order on Lamport timestamps: by counter, ties broken by node id (UTF-16 code unit
 * order, as `<` on strings). Returns -1, 0 or 1, so it can be passed to `Array.prototype.sort`.
 */
export function compareLamportTimestamps(a: LamportTimestamp, b: LamportTimestamp): -1 | 0 | 1 {
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.node === b.node) return 0;
  return a.node < b.node ? -1 : 1;
}

/**
 * A Lamport clock: `tick()` for a local event or a send, `receive(remote)` when a message
 * arrives (max of both counters, plus one), `now()` to read without advancing.
 * Counters start at 0, so the first `tick()` gives 1.
 */
export class LamportClock {
  readonly nodeId: string;
  #counter = 0;

  /** @param nodeId this clock's node id, a non-empty string; breaks ties between equal counters. */
  constructor(nodeId: string) {
    if (typeof nodeId !== 'string' || nodeId.length === 0) {
      throw configError('LamportClock needs a non-empty string nodeId');
    }
    this.nodeId = nodeId;
  }

  /** The current timestamp, without advancing the clock. */
  now(): LamportTimestamp {
    return { counter: this.#counter, node: this.nodeId };
  }

  /** Advances the clock for a local event or a send and returns the new timestamp. */
  tick(): LamportTimestamp {
    this.#counter = nextCounter(this.#counter);
    return { counter: this.#counter, node: this.nodeId };
  }

  /**
   * Takes in a remote timestamp (or its bare counter) and returns a timestamp greater than both
   * it and every earlier local one. A counter that is not a non-negative safe integer is
   * `INVALID_INPUT`; the clock does not move on any error.
   */
  receive(remote: LamportTimestamp | number): LamportTimestamp {
    const remoteCounter = typeof remote === 'number' ? remote : remote?.counter;
    if (
      typeof remoteCounter !== 'number' ||
      !Number.isSafeInteger(remoteCounter) ||
      remoteCounter < 0
    ) {
      throw invalidInput('A Lamport counter must be a non-negative safe integer');
    }
    this.#counter = nextCounter(Math.max(this.#counter, remoteCounter));
    return { counter: this.#counter, node: this.nodeId };
  }
}

function nextCounter(counter: number): number {
  if (counter >= LAMPORT_MAX_COUNTER) {
    throw new CausewayError(ErrorCode.CLOCK_DRIFT, 'Lamport counter reached its maximum', {
      details: { maxCounter: LAMPORT_MAX_COUNTER },
    });
  }
  return counter + 1;
}

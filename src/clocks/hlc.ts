import { CausewayError, configError, ErrorCode, invalidInput } from '../errors.js';
import { functionOption, knownOptions, numberOption } from '../options.js';

/** Wall times are milliseconds since the Unix epoch below 2^48 (up to the year 10889). */
const MAX_WALL_TIME = 2 ** 48 - 1;
/** The logical counter is an unsigned 32-bit integer (8 hex digits when encoded). */
const MAX_LOGICAL = 2 ** 32 - 1;
const WALL_DIGITS = 12;
const LOGICAL_DIGITS = 8;
const MAX_NODE_LENGTH = 32;
const ENCODED_LENGTH = WALL_DIGITS + LOGICAL_DIGITS + MAX_NODE_LENGTH;
/** Pads node ids to a fixed width; it sorts below every node character, so order is kept. */
const NODE_PAD = '!';
const NODE_ID = /^[0-9A-Za-z._~-]{1,32}$/;
const ENCODED_TIMESTAMP = /^[0-9a-f]{20}[0-9A-Za-z._~-]{1,32}!*$/;
const DEFAULT_MAX_OFFSET_MS = 500;

/**
 * Set just before the clock constructs a timestamp from its own, already valid fields, so the
 * constructor skips validation on the hot path; the constructor clears it at once.
 */
let trustedConstruction = false;

/**
 * A hybrid logical clock timestamp: physical milliseconds, a logical counter for events within
 * the same millisecond, and the node id that breaks the remaining ties. Totally ordered by
 * (`wallTime`, `logical`, `node`), node ids in code unit order.
 *
 * Limits: `wallTime` an integer in [0, 2^48 - 1] (ms since the epoch), `logical` an integer in
 * [0, 2^32 - 1], `node` 1 to 32 characters of `0-9 A-Z a-z . _ ~ -`.
 */
export class HlcTimestamp {
  /** The fixed length of `encode()`'s output. */
  static readonly ENCODED_LENGTH = ENCODED_LENGTH;
  /** The longest node id; `encode()` pads shorter ones to this width. */
  static readonly MAX_NODE_LENGTH = MAX_NODE_LENGTH;

  readonly wallTime: number;
  readonly logical: number;
  readonly node: string;

  /** Validates its fields: anything outside the limits above is `INVALID_INPUT`. */
  constructor(wallTime: number, logical: number, node: string) {
    if (trustedConstruction) {
      trustedConstruction = false;
    } else {
      assertTimestampFields(wallTime, logical, node);
    }
    this.wallTime = wallTime;
    this.logical = logical;
    this.node = node;
  }

  /**
   * Parses `encode()`'s output. Any other string (or a non-string) is `INVALID_INPUT`, checked
   * against the fixed length before anything else is looked at.
   */
  static decode(encoded: string): HlcTimestamp {
    if (
      typeof encoded !== 'string' ||
      encoded.length !== ENCODED_LENGTH ||
      !ENCODED_TIMESTAMP.test(encoded)
    ) {
      throw invalidInput(
        `An encoded HLC timestamp is ${ENCODED_LENGTH} characters in a fixed layout`,
      );
    }
    let nodeEnd = ENCODED_LENGTH;
    while (encoded.charAt(nodeEnd - 1) === NODE_PAD) nodeEnd--;
    return new HlcTimestamp(
      Number.parseInt(encoded.slice(0, WALL_DIGITS), 16),
      Number.parseInt(encoded.slice(WALL_DIGITS, WALL_DIGITS + LOGICAL_DIGITS), 16),
      encoded.slice(WALL_DIGITS + LOGICAL_DIGITS, nodeEnd),
    );
  }

  /** -1, 0 or 1 by (`wallTime`, `logical`, `node`); usable with `Array.prototype.sort`. */
  compare(other: HlcTimestamp): -1 | 0 | 1 {
    if (this.wallTime !== other.wallTime) return this.wallTime < other.wallTime ? -1 : 1;
    if (this.logical !== other.logical) return this.logical < other.logical ? -1 : 1;
    if (this.node === other.node) return 0;
    return this.node < other.node ? -1 : 1;
  }

  /**
   * A fixed-width string (`HlcTimestamp.ENCODED_LENGTH`, 52 characters) whose plain string order
   * (`<`, byte order, `COLLATE "C"`) is the clock order: 12 lowercase hex digits of `wallTime`,
   * 8 of `logical`, then `node` padded with `!` to 32 characters. Example:
   * `0193a4f2c1e000000002node-a!!!!!!!!!!!!!!!!!!!!!!!!!!`.
   */
  encode(): string {
    return (
      this.wallTime.toString(16).padStart(WALL_DIGITS, '0') +
      this.logical.toString(16).padStart(LOGICAL_DIGITS, '0') +
      this.node.padEnd(MAX_NODE_LENGTH, NODE_PAD)
    );
  }

  /** The encoded form, so a timestamp serializes to one compact, sortable string. */
  toJSON(): string {
    return this.encode();
  }

  toString(): string {
    return this.encode();
  }
}

export interface HybridLogicalClockOptions {
  /** This clock's node id: 1 to 32 characters of `0-9 A-Z a-z . _ ~ -`. Required. */
  nodeId: string;
  /**
   * How far ahead of our physical clock, in milliseconds, a remote timestamp may be before
   * `receive` refuses it with `CLOCK_DRIFT`. Default 500, as CockroachDB's `--max-offset`.
   */
  maxOffsetMs?: number;
  /**
   * The physical clock in milliseconds since the Unix epoch; fractions are dropped. Default
   * `Date.now`. Returning anything outside [0, 2^48 - 1] is a `CONFIG` error.
   */
  physicalClock?: () => number;
}

/**
 * A hybrid logical clock (Kulkarni et al., 2014). Every timestamp it gives is strictly greater
 * than the one before and than any remote timestamp it received, and its wall time is never
 * behind the physical clock. When the physical clock stalls or goes backwards, the logical
 * counter carries the order; should the counter pass 2^32 - 1 the wall time moves one
 * millisecond ahead and the counter restarts at 0, so the clock never stops.
 */
export class HybridLogicalClock {
  readonly nodeId: string;
  readonly maxOffsetMs: number;
  readonly #physicalClock: () => number;
  #wallTime = 0;
  #logical = 0;

  constructor(options: HybridLogicalClockOptions) {
    const { nodeId, maxOffsetMs, physicalClock } = knownOptions(options, 'HybridLogicalClock', [
      'nodeId',
      'maxOffsetMs',
      'physicalClock',
    ]);
    if (!isNodeId(nodeId)) {
      throw configError(
        'HybridLogicalClock: nodeId must be 1 to 32 characters of 0-9 A-Z a-z . _ ~ -',
      );
    }
    this.nodeId = nodeId;
    this.maxOffsetMs = numberOption(
      'HybridLogicalClock',
      'maxOffsetMs',
      maxOffsetMs,
      DEFAULT_MAX_OFFSET_MS,
      { min: 0 },
    );
    this.#physicalClock = functionOption(
      'HybridLogicalClock: physicalClock',
      physicalClock,
      Date.now,
    );
  }

  /** A timestamp for a local event or a send. */
  now(): HlcTimestamp {
    const physical = this.#readPhysicalClock();
    if (physical > this.#wallTime) {
      this.#wallTime = physical;
      this.#logical = 0;
    } else {
      this.#advance(this.#wallTime, this.#logical + 1);
    }
    trustedConstruction = true;
    return new HlcTimestamp(this.#wallTime, this.#logical, this.nodeId);
  }

  /**
   * Takes in a timestamp from another node and returns one greater than it and than every
   * timestamp this clock gave before. A remote wall time more than `maxOffsetMs` ahead of the
   * physical clock is refused with `CLOCK_DRIFT` and leaves the clock where it was.
   */
  receive(remote: HlcTimestamp): HlcTimestamp {
    if (!(remote instanceof HlcTimestamp)) {
      throw invalidInput('HybridLogicalClock.receive takes an HlcTimestamp');
    }
    const physical = this.#readPhysicalClock();
    if (remote.wallTime - physical > this.maxOffsetMs) {
      throw new CausewayError(ErrorCode.CLOCK_DRIFT, 'Remote clock is too far ahead of ours', {
        details: { offsetMs: remote.wallTime - physical, maxOffsetMs: this.maxOffsetMs },
      });
    }
    const local = this.#wallTime;
    const wallTime = Math.max(local, remote.wallTime, physical);
    let logical = 0;
    if (wallTime === local && wallTime === remote.wallTime) {
      logical = Math.max(this.#logical, remote.logical) + 1;
    } else if (wallTime === local) {
      logical = this.#logical + 1;
    } else if (wallTime === remote.wallTime) {
      logical = remote.logical + 1;
    }
    this.#advance(wallTime, logical);
    trustedConstruction = true;
    return new HlcTimestamp(this.#wallTime, this.#logical, this.nodeId);
  }

  /** Moves to (wallTime, logical), carrying a logical overflow into the next millisecond. */
  #advance(wallTime: number, logical: number): void {
    if (logical > MAX_LOGICAL) {
      if (wallTime >= MAX_WALL_TIME) {
        throw new CausewayError(ErrorCode.CLOCK_DRIFT, 'HLC reached its maximum timestamp', {
          details: { maxWallTime: MAX_WALL_TIME },
        });
      }
      this.#wallTime = wallTime + 1;
      this.#logical = 0;
    } else {
      this.#wallTime = wallTime;
      this.#logical = logical;
    }
  }

  #readPhysicalClock(): number {
    const physical = Math.floor(this.#physicalClock());
    if (!(physical >= 0 && physical <= MAX_WALL_TIME)) {
      throw configError('HybridLogicalClock physicalClock must return ms since the epoch', {
        physical,
      });
    }
    return physical;
  }
}

function assertTimestampFields(wallTime: number, logical: number, node: string): void {
  if (!Number.isInteger(wallTime) || wallTime < 0 || wallTime > MAX_WALL_TIME) {
    throw invalidInput(`An HLC wall time must be an integer in [0, ${MAX_WALL_TIME}]`);
  }
  if (!Number.isInteger(logical) || logical < 0 || logical > MAX_LOGICAL) {
    throw invalidInput(`An HLC logical counter must be an integer in [0, ${MAX_LOGICAL}]`);
  }
  if (!isNodeId(node)) {
    throw invalidInput('An HLC node id must be 1 to 32 characters of 0-9 A-Z a-z . _ ~ -');
  }
}

function isNodeId(node: unknown): node is string {
  return typeof node === 'string' && node.length <= MAX_NODE_LENGTH && NODE_ID.test(node);
}

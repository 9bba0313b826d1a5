import { readFile, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { invalidInput } from '../errors.js';
import { functionOption, knownOptions } from '../options.js';
import { type CheckOptions, checkHistory } from './checker.js';
import { assertOperation } from './checker-input.js';
import type { CheckResult, HistoryOperation, ReadOperation, WriteOperation } from './history.js';

/** The JSON form of a recorded history (`toJSON()`, `save()`, `fromJSON()`, `load()`). */
export interface RecordedHistory {
  readonly format: typeof HISTORY_FORMAT;
  readonly operations: readonly HistoryOperation[];
}

const HISTORY_FORMAT = 'causeway-history/1';

type Fields<T> = Omit<T, 'kind'>;
// Assigned last so that a `kind` smuggled into the fields cannot turn a write into a read.
const WRITE = { kind: 'write' } as const;
const READ = { kind: 'read' } as const;

export interface HistoryRecorderOptions {
  /** The clock `now()` reads, in milliseconds (default: `performance.now`). */
  readonly clock?: () => number;
}

/**
 * Records a history for `checkHistory` from code that runs many sessions concurrently.
 *
 * Record each operation once it completes, with the times the caller took around it
 * (`const startedAt = recorder.now(); ...; recorder.write({ ..., startedAt, endedAt:
 * recorder.now() })`). A session runs one operation at a time, so appending at completion keeps
 * every session's operations in session order while sessions interleave freely. The recorder
 * enforces that: an operation that started before its session's previous one ended is
 * `INVALID_INPUT` (two operations of one session in flight at once have no session order), as is
 * a malformed operation or a write id recorded twice, at the call that records it.
 *
 * Operations are copied and frozen when recorded, so later changes to the caller's objects do
 * not change the history.
 */
export class HistoryRecorder {
  readonly #operations: HistoryOperation[] = [];
  readonly #writeIds = new Set<string>();
  /** When each session's latest operation ended. */
  readonly #sessionEnd = new Map<string, number>();
  readonly #clock: () => number;

  constructor(options: HistoryRecorderOptions = {}) {
    const { clock } = knownOptions(options, 'HistoryRecorder', ['clock']);
    this.#clock = functionOption('HistoryRecorder: clock', clock, () => performance.now());
  }

  /** Milliseconds on the recorder's clock: take it before and after each operation. */
  now(): number {
    return this.#clock();
  }

  /** Records a completed (or failed: `acknowledged: false`) write; returns the stored copy. */
  write(fields: Fields<WriteOperation>): WriteOperation {
    const base: WriteOperation = Object.assign({ kind: 'write' }, fields, WRITE);
    const copy: WriteOperation = Object.freeze({
      ...base,
      ...(Array.isArray(base.dependsOn) ? { dependsOn: Object.freeze([...base.dependsOn]) } : {}),
    });
    this.#append(copy);
    return copy;
  }

  /** Records a completed read; returns the stored copy. */
  read(fields: Fields<ReadOperation>): ReadOperation {
    const base: ReadOperation = Object.assign({ kind: 'read' }, fields, READ);
    const observed = base.observed;
    const copy: ReadOperation = Object.freeze({
      ...base,
      ...(typeof observed === 'object' && observed !== null && !Array.isArray(observed)
        ? { observed: Object.freeze({ ...observed }) }
        : {}),
    });
    this.#append(copy);
    return copy;
  }

  /** How many operations have been recorded. */
  get size(): number {
    return this.#operations.length;
  }

  /** The operations recorded so far, in order (a copy). */
  operations(): readonly HistoryOperation[] {
    return [...this.#operations];
  }

  /** Checks the history recorded so far (see `checkHistory`). */
  check(options?: CheckOptions): CheckResult {
    return checkHistory(this.#operations, options);
  }

  toJSON(): RecordedHistory {
    return { format: HISTORY_FORMAT, operations: this.operations() };
  }

  /** Writes the history as JSON (one operation per line) to `path`, e.g. to keep a failed run. */
  async save(path: string): Promise<void> {
    const lines = this.#operations.map((op) => JSON.stringify(op));
    const body = lines.length === 0 ? '[]' : `[\n${lines.join(',\n')}\n]`;
    await writeFile(
      path,
      `{"format":${JSON.stringify(HISTORY_FORMAT)},"operations":${body}}\n`,
      'utf8',
    );
  }

  /** A recorder holding a history from `toJSON()` (or a plain array of operations). */
  static fromJSON(value: unknown): HistoryRecorder {
    const operations = Array.isArray(value)
      ? value
      : typeof value === 'object' &&
          value !== null &&
          (value as { format?: unknown }).format === HISTORY_FORMAT
        ? (value as { operations?: unknown }).operations
        : undefined;
    if (!Array.isArray(operations)) {
      throw invalidInput(`Not a recorded history: expected { format: "${HISTORY_FORMAT}" }`);
    }
    const recorder = new HistoryRecorder();
    for (const op of operations) {
      if (typeof op === 'object' && op !== null && (op as { kind?: unknown }).kind === 'read') {
        recorder.read(op as ReadOperation);
      } else {
        recorder.write(op as WriteOperation);
      }
    }
    return recorder;
  }

  /** Reads a history written by `save()`. */
  static async load(path: string): Promise<HistoryRecorder> {
    const text = await readFile(path, 'utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw invalidInput(`${path} is not JSON: ${(error as Error).message}`);
    }
    return HistoryRecorder.fromJSON(parsed);
  }

  #append(op: HistoryOperation): void {
    const index = this.#operations.length;
    assertOperation(op, index);
    if (op.kind === 'write' && this.#writeIds.has(op.id)) {
      throw invalidInput(
        `History operation ${index}: write id ${JSON.stringify(op.id)} used twice`,
        {
          index,
        },
      );
    }
    const previousEnd = this.#sessionEnd.get(op.session);
    if (previousEnd !== undefined && op.startedAt < previousEnd) {
      throw invalidInput(
        `History operation ${index}: session ${op.session} started it at ${op.startedAt}, before its previous operation ended (${previousEnd}); a session runs one operation at a time`,
        { index },
      );
    }
    if (op.kind === 'write') this.#writeIds.add(op.id);
    this.#sessionEnd.set(op.session, op.endedAt);
    this.#operations.push(op);
  }
}

import {
  type Decision,
  type DecisionEntry,
  type DecisionLog,
  type DecisionRecord,
  functionOption,
  knownOptions,
} from '../../src/adapter-kit.js';

interface Stored {
  readonly gid: string;
  readonly decision: Decision;
  readonly participants: readonly string[];
  readonly decidedAt: number;
}

export interface MemoryDecisionLogOptions {
  /** Clock for `decidedAt`. Default: `Date.now`. */
  now?: () => number;
}

/**
 * An in-process decision log for tests and demos: write-once like the real ones, but gone with
 * the process, so it cannot recover anything after a crash. Set `unreachable` to simulate an
 * outage.
 */
export class MemoryDecisionLog implements DecisionLog {
  /** While true every operation rejects. */
  unreachable = false;
  /** The size of every `recordMany` batch, in order (for tests of group commit). */
  readonly batches: number[] = [];
  private readonly records = new Map<string, Stored>();
  private readonly now: () => number;

  constructor(options: MemoryDecisionLogOptions = {}) {
    const { now } = knownOptions(options, 'MemoryDecisionLog', ['now']);
    this.now = functionOption('MemoryDecisionLog: now', now, Date.now);
  }

  async record(
    gid: string,
    decision: Decision,
    participants: readonly string[],
  ): Promise<DecisionRecord> {
    this.check();
    const existing = this.records.get(gid);
    if (existing !== undefined) return this.withAge(existing);
    const record: Stored = {
      gid,
      decision,
      participants: [...participants],
      decidedAt: this.now(),
    };
    this.records.set(gid, record);
    return this.withAge(record);
  }

  /** Several decisions at once (group commit); each batch's size is added to `batches`. */
  async recordMany(entries: readonly DecisionEntry[]): Promise<DecisionRecord[]> {
    this.check();
    this.batches.push(entries.length);
    return Promise.all(
      entries.map((entry) => this.record(entry.gid, entry.decision, entry.participants)),
    );
  }

  async get(gid: string): Promise<DecisionRecord | undefined> {
    this.check();
    const record = this.records.get(gid);
    return record === undefined ? undefined : this.withAge(record);
  }

  async list(prefix: string): Promise<DecisionRecord[]> {
    this.check();
    return [...this.records.values()]
      .filter((record) => record.gid.startsWith(prefix))
      .map((record) => this.withAge(record));
  }

  async forget(gids: readonly string[]): Promise<void> {
    this.check();
    for (const gid of gids) this.records.delete(gid);
  }

  async close(): Promise<void> {}

  private withAge(record: Stored): DecisionRecord {
    return {
      ...record,
      decidedAt: new Date(record.decidedAt),
      ageMs: this.now() - record.decidedAt,
    };
  }

  private check(): void {
    if (this.unreachable) throw new Error('the decision log is unreachable');
  }
}

import type { DecisionEntry, DecisionLog, DecisionRecord } from './decision-log.js';

interface Waiting {
  readonly entry: DecisionEntry;
  resolve(record: DecisionRecord): void;
  reject(error: unknown): void;
}

/**
 * Group commit of decisions. A decision is written at once when no write is in flight, so a
 * lone transaction waits for nothing; decisions that arrive while a write is in flight form the
 * next batch, written in one `recordMany` as soon as that write ends. Under load one flush then
 * carries many transactions' commit points. A failed batch fails each of its callers, which
 * retry as they would a failed single write.
 */
export class DecisionBatcher {
  private readonly log: DecisionLog;
  private readonly recordMany: NonNullable<DecisionLog['recordMany']>;
  private queued: Waiting[] = [];
  private writing = false;

  constructor(log: DecisionLog, recordMany: NonNullable<DecisionLog['recordMany']>) {
    this.log = log;
    this.recordMany = recordMany;
  }

  record(entry: DecisionEntry): Promise<DecisionRecord> {
    return new Promise((resolve, reject) => {
      this.queued.push({ entry, resolve, reject });
      if (!this.writing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.writing = true;
    while (this.queued.length > 0) {
      const batch = this.queued;
      this.queued = [];
      try {
        const records =
          batch.length === 1
            ? [
                await this.log.record(
                  batch[0]!.entry.gid,
                  batch[0]!.entry.decision,
                  batch[0]!.entry.participants,
                ),
              ]
            : await this.recordMany.call(
                this.log,
                batch.map((waiting) => waiting.entry),
              );
        batch.forEach((waiting, index) => {
          const record = records[index];
          if (record === undefined) waiting.reject(new Error('the log returned too few decisions'));
          else waiting.resolve(record);
        });
      } catch (error) {
        for (const waiting of batch) waiting.reject(error);
      }
    }
    this.writing = false;
  }
}

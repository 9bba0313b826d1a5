import type {
  HistoryOperation,
  ReadOperation,
  WriteOperation,
} from '../../../src/testing/history.js';

/**
 * Builds hand-written histories: each call appends one operation with the next time stamps, so
 * the array order is the history order.
 */
export class HistoryBuilder {
  readonly ops: HistoryOperation[] = [];
  #clock = 0;

  write(
    session: string,
    key: string,
    id: string,
    version: number,
    extra: { dependsOn?: string[]; acknowledged?: boolean } = {},
  ): WriteOperation {
    const op: WriteOperation = {
      kind: 'write',
      session,
      key,
      id,
      version,
      node: 'leader',
      startedAt: this.#clock++,
      endedAt: this.#clock++,
      acknowledged: extra.acknowledged ?? true,
      ...(extra.dependsOn ? { dependsOn: extra.dependsOn } : {}),
    };
    this.ops.push(op);
    return op;
  }

  read(session: string, observed: Record<string, number>, node = 'replica-1'): ReadOperation {
    const op: ReadOperation = {
      kind: 'read',
      session,
      observed,
      node,
      startedAt: this.#clock++,
      endedAt: this.#clock++,
    };
    this.ops.push(op);
    return op;
  }
}

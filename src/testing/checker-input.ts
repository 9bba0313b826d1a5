import { invalidInput } from '../errors.js';
import type { HistoryOperation } from './history.js';

// Validation of one recorded operation, shared by the checker and the recorder.

const KIND_FIELDS = {
  write: ['session', 'key', 'id', 'version', 'node', 'startedAt', 'endedAt', 'acknowledged'],
  read: ['session', 'observed', 'node', 'startedAt', 'endedAt'],
} as const;

function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks the shape of one operation (not its relation to others) and throws `INVALID_INPUT`
 * naming its position. Shared with `HistoryRecorder`, which rejects a bad operation when it is
 * recorded rather than when the history is checked.
 */
export function assertOperation(op: unknown, index: number): asserts op is HistoryOperation {
  const fail = (problem: string): never => {
    throw invalidInput(`History operation ${index}: ${problem}`, { index });
  };
  if (typeof op !== 'object' || op === null) fail('not an object');
  const record = op as Record<string, unknown>;
  const kind = record['kind'];
  if (kind !== 'write' && kind !== 'read') fail('kind must be "write" or "read"');
  for (const field of KIND_FIELDS[kind as 'write' | 'read']) {
    if (record[field] === undefined) fail(`missing ${field}`);
  }
  for (const field of ['session', 'node'] as const) {
    if (typeof record[field] !== 'string') fail(`${field} must be a string`);
  }
  const { startedAt, endedAt } = record;
  if (typeof startedAt !== 'number' || !Number.isFinite(startedAt)) {
    fail('startedAt must be a finite number');
  }
  if (typeof endedAt !== 'number' || !Number.isFinite(endedAt)) {
    fail('endedAt must be a finite number');
  }
  if ((endedAt as number) < (startedAt as number)) fail('endedAt is before startedAt');
  if (kind === 'write') {
    if (typeof record['key'] !== 'string') fail('key must be a string');
    if (typeof record['id'] !== 'string' || record['id'] === '') {
      fail('id must be a non-empty string');
    }
    if (typeof record['acknowledged'] !== 'boolean') fail('acknowledged must be a boolean');
    const version = record['version'];
    if (!isVersion(version)) fail('version must be a non-negative safe integer');
    if (version === 0 && record['acknowledged'] === true) {
      fail('an acknowledged write must have a version of at least 1 (0 is the initial state)');
    }
    const dependsOn = record['dependsOn'];
    // Array.from visits holes (as undefined) where every() skips them: a sparse array is refused.
    if (
      dependsOn !== undefined &&
      (!Array.isArray(dependsOn) || !Array.from(dependsOn).every((id) => typeof id === 'string'))
    ) {
      fail('dependsOn must be an array of write ids');
    }
  } else {
    const observed = record['observed'];
    if (typeof observed !== 'object' || observed === null || Array.isArray(observed)) {
      fail('observed must be an object of key versions');
    }
    for (const version of Object.values(observed as object)) {
      if (!isVersion(version)) fail('an observed version must be a non-negative safe integer');
    }
  }
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, sourceFiles } from '../../support/import-graph.js';

const MAX_LINES = 450;

// The fencing chaos workload is one 480-line closure: splitting it is a refactor to make with a
// chaos run to check it. TODO: split it by role; the test then keeps it under the limit.
const KNOWN_LONG = ['test/chaos/workloads/fencing.ts'];

function lineCount(file: string): number {
  return readFileSync(join(repoRoot, file), 'utf8').split('\n').length - 1;
}

describe('file length', () => {
  const files = ['src', 'adapters', 'test', 'bench', 'examples'].flatMap(sourceFiles);
  const long = files.filter((file) => lineCount(file) > MAX_LINES);

  it(`no TypeScript file is over ${MAX_LINES} lines beyond the known exceptions`, () => {
    expect(long.filter((file) => !KNOWN_LONG.includes(file))).toEqual([]);
  });

  it('lists no exception that is already short enough', () => {
    expect(KNOWN_LONG.filter((file) => !long.includes(file))).toEqual([]);
  });
});

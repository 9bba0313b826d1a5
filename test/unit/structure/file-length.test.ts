import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { repoRoot, sourceFiles } from '../../support/import-graph.js';

const MAX_LINES = 450;

function lineCount(file: string): number {
  return readFileSync(join(repoRoot, file), 'utf8').split('\n').length - 1;
}

it(`no TypeScript file is over ${MAX_LINES} lines (split a longer one by role)`, () => {
  const files = ['src', 'adapters', 'test', 'bench', 'examples'].flatMap(sourceFiles);
  expect(files.filter((file) => lineCount(file) > MAX_LINES)).toEqual([]);
});

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../support/import-graph.js';

/** The paths listed in the README's Layout section (first word of each line of its block). */
function fileMap(): string[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Layout'));
  const start = section.indexOf('```\n') + 4;
  const block = section.slice(start, section.indexOf('\n```', start));
  return block.split('\n').map((line) => line.split(/\s+/)[0]!);
}

/** The folders a reader should find in the map, and the core's top-level files. */
function expected(): string[] {
  const folders = (dir: string) =>
    readdirSync(join(repoRoot, dir), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => `${dir}/${entry.name}/`);
  const coreFiles = readdirSync(join(repoRoot, 'src')).filter((name) => name.endsWith('.ts'));
  return [
    ...folders('src'),
    ...folders('adapters'),
    ...folders('examples'),
    ...folders('test'),
    'bench/',
    ...coreFiles.map((name) => `src/${name}`),
  ].sort();
}

describe("README's file map", () => {
  it('lists every folder of src, adapters, examples and test, and every top-level core file', () => {
    expect(fileMap().sort()).toEqual(expected());
  });

  it('names only paths that exist', () => {
    for (const path of fileMap()) expect(existsSync(join(repoRoot, path)), path).toBe(true);
  });
});

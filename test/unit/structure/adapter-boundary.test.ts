import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importSpecifiers, repoRoot, sourceFiles } from '../../support/import-graph.js';

const KIT = 'src/adapter-kit.ts';

/** The core files (src/...) that `file` imports, by repository path. */
function coreImports(file: string): string[] {
  return importSpecifiers(file)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => normalize(join(dirname(file), specifier)).replace(/\.js$/, '.ts'))
    .filter((path) => path.startsWith('src/'));
}

describe('adapter boundary', () => {
  const bypassing = sourceFiles('adapters').filter((file) =>
    coreImports(file).some((path) => path !== KIT),
  );

  it('adapters reach the core only through src/adapter-kit.ts', () => {
    expect(bypassing).toEqual([]);
  });

  it('the kit re-exports core modules only and is no package entry point', () => {
    expect(importSpecifiers(KIT).filter((specifier) => !specifier.startsWith('./'))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(JSON.stringify(manifest.exports)).not.toContain('adapter-kit');
  });
});

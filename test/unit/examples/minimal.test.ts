import { describe, expect, it } from 'vitest';
import { runTsx } from '../../support/child-process.js';
import { importSpecifiers, repoRoot, sourceFiles } from '../../support/import-graph.js';

describe('examples/minimal', () => {
  it('imports the package by name only, as an application would', () => {
    for (const file of sourceFiles('examples/minimal')) {
      for (const specifier of importSpecifiers(file)) {
        expect(specifier, file).toMatch(/^causeway(\/(express|pg|redis|memory|testing))?$/);
      }
    }
  });

  it('runs: the read right after a write goes to the leader, later ones to the replica', async () => {
    const result = await runTsx('examples/minimal/main.ts', [], { cwd: repoRoot });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      'right after the write: Hello, replicas from leader (write-floor-not-replicated)',
      '250 ms later:          Hello, replicas from replica (sticky)',
      'eventual, meanwhile:   Hello, replicas from replica (sticky)',
    ]);
  });
});

import { expect, it } from 'vitest';
import { importSpecifiers, sourceFiles } from '../../support/import-graph.js';

/** The one import of the tests an example may make: the throwaway cluster of `demo --postgres`. */
const HARNESS = '../../test/harness/cluster.js';

it('the examples import Causeway by its package name only, as an application would', () => {
  for (const file of sourceFiles('examples')) {
    for (const specifier of importSpecifiers(file)) {
      if (specifier === HARNESS) {
        expect(file).toBe('examples/editorial/main.ts');
      } else if (specifier.startsWith('.')) {
        // Files of the example's own folder (and below it), never the package's sources.
        expect(specifier, file).toMatch(/^\.\/[\w./-]+$/);
      } else {
        expect(specifier, file).not.toMatch(/(^|\/)(src|adapters)\//);
      }
    }
  }
});

/**
 * The static import graph of the repository's TypeScript sources, read with a regular expression
 * (enough for this code base: every import is a single-quoted relative or package specifier).
 * Type-only imports count: a cycle of types still ties the files' meanings together.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '..', '..');

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*'([^']+)'|(?:^|\n)\s*import\s*'([^']+)'/g;

/** Every `.ts` file below `dir` (relative to the repository), sorted. */
export function sourceFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string) => {
    for (const entry of readdirSync(join(repoRoot, at), { withFileTypes: true })) {
      const path = join(at, entry.name);
      // Generated code is not the project's source (examples/orm/prisma/generated, git-ignored).
      if (entry.isDirectory() && entry.name === 'generated') continue;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) found.push(path);
    }
  };
  walk(dir);
  return found.sort();
}

/** The specifiers `file` imports or re-exports from, as written. */
export function importSpecifiers(file: string): string[] {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  return [...text.matchAll(IMPORT)].map((match) => (match[1] ?? match[2])!);
}

/** The repository files `file` imports (relative specifiers only, `.js` mapped to `.ts`). */
export function localImports(file: string): string[] {
  return importSpecifiers(file)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) =>
      relative(repoRoot, resolve(repoRoot, dirname(file), specifier.replace(/\.js$/, '.ts'))),
    );
}

/**
 * The import cycles of a graph (file -> files it imports): each strongly connected component of
 * more than one file, or a file importing itself, as a sorted file list; the cycles sorted.
 */
export function cyclesOf(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's strongly connected components, iterative so that deep chains cannot overflow.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const enter = (file: string) => {
    index.set(file, next);
    low.set(file, next++);
    stack.push(file);
    onStack.add(file);
  };
  const visit = (root: string) => {
    const work: Array<{ file: string; edge: number }> = [{ file: root, edge: 0 }];
    enter(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const targets = (edges.get(frame.file) ?? []).filter((to) => edges.has(to));
      if (frame.edge < targets.length) {
        const to = targets[frame.edge++]!;
        if (!index.has(to)) {
          enter(to);
          work.push({ file: to, edge: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.file, Math.min(low.get(frame.file)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.file, Math.min(low.get(parent.file)!, low.get(frame.file)!));
      if (low.get(frame.file) !== index.get(frame.file)) continue;
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== frame.file);
      if (component.length > 1 || targets.includes(frame.file)) cycles.push(component.sort());
    }
  };
  for (const file of edges.keys()) if (!index.has(file)) visit(file);
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** The import cycles among `files` of the repository. */
export function importCycles(files: readonly string[]): string[][] {
  return cyclesOf(new Map(files.map((file) => [file, localImports(file)])));
}

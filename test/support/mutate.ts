/** Replaces the value at one path of a parsed JSON document (or the document itself). */
export function replaceAt(document: unknown, pick: number, replacement: unknown): unknown {
  const paths: Array<Array<string | number>> = [[]];
  const walk = (node: unknown, path: Array<string | number>) => {
    if (typeof node !== 'object' || node === null) return;
    for (const [k, child] of Object.entries(node)) {
      const next = [...path, Array.isArray(node) ? Number(k) : k];
      paths.push(next);
      walk(child, next);
    }
  };
  walk(document, []);
  const path = paths[pick % paths.length]!;
  if (path.length === 0) return replacement;
  const copy = structuredClone(document) as Record<string | number, unknown>;
  let node = copy;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[path.at(-1)!] = replacement;
  return copy;
}

/** Valid text with one character replaced, so decoders see near-misses, not only noise. */
export function mutateCharacter(text: string, at: number, unit: string): string {
  const i = at % Math.max(text.length, 1);
  return text.slice(0, i) + unit + text.slice(i + 1);
}

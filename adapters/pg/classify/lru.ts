/**
 * Sets `key` to `value` in `map` as the most recently used entry, dropping the least recently
 * used one when `map` holds `size` entries already. A Map iterates in insertion order, so
 * re-inserting on every use keeps its first key the least recently used.
 */
export function remember<V>(map: Map<string, V>, key: string, value: V, size: number): void {
  map.delete(key);
  if (map.size >= size) {
    const oldest = map.keys().next();
    if (oldest.done !== true) map.delete(oldest.value);
  }
  map.set(key, value);
}

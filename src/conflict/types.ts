/**
 * What a read of a versioned value gives: the live values, the causal context to send back
 * with the next write, and whether a delete is among the current versions.
 */
export interface VersionedValue<T> {
  /**
   * The live values in a deterministic order: none (never written, or deleted), one, or
   * several concurrent siblings. A delete is never among them: see `deleted`.
   */
  readonly values: T[];
  /**
   * An opaque, URL-safe string that says what this read has seen. Pass it back unchanged with
   * the next `put`/`delete` so that the write replaces exactly what was read. `''` means "seen
   * nothing" (a blind write).
   */
  readonly context: string;
  /**
   * True when a delete is among the current versions: alone (the key reads as deleted) or as a
   * sibling concurrent with the live `values`, so a delete racing a write is never lost silently.
   */
  readonly deleted: boolean;
}

/** Options of every write (`put`, `delete`, `resolve`). */
export interface WriteOptions {
  /**
   * The `context` of the read this write is based on. Omitted or `''`: a blind write that
   * replaces nothing under `Siblings` (it becomes a sibling of everything there).
   */
  readonly context?: string;
  /**
   * Who writes: a stable id of one sequential writer (a client, a node, a user's device), at
   * most 128 UTF-8 bytes. `Siblings` mints the write's dot from it; `LwwRegister` records it.
   */
  readonly actor: string;
}

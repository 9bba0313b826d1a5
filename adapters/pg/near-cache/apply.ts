// Applies the stream's decoded changes to the cached tables. Anything the cache cannot decode
// faithfully throws: the caller then stops the cache (stale) instead of keeping a wrong row.
import type { RowData, StreamChange, StreamRelation } from './replication.js';
import type { TableStore } from './table-store.js';

/**
 * Checks a relation message against the snapshot's schema: same columns, same types, same
 * order. A difference (DDL since the snapshot) throws: the cache must re-snapshot.
 */
export function checkRelation(
  byOid: ReadonlyMap<number, TableStore>,
  relation: StreamRelation,
): void {
  const store = byOid.get(relation.relationOid);
  if (store === undefined) return;
  const expected = store.schema.columns;
  const same =
    relation.columns.length === expected.length &&
    relation.columns.every(
      (column, i) => column.name === expected[i]?.name && column.typeOid === expected[i]?.typeOid,
    );
  if (!same) {
    throw new Error(`table '${store.schema.name}' changed since the snapshot (its columns differ)`);
  }
}

/** Applies one committed transaction, change by change, in the order the primary made them. */
export function applyTransaction(
  byOid: ReadonlyMap<number, TableStore>,
  changes: readonly StreamChange[],
): void {
  for (const change of changes) {
    if (change.tag === 'truncate') {
      for (const relation of change.relations) byOid.get(relation.relationOid)?.clear();
      continue;
    }
    const store = byOid.get(change.relation.relationOid);
    if (store === undefined) continue;
    if (change.tag === 'insert') {
      store.put(complete(store, { ...change.new }, undefined));
    } else if (change.tag === 'update') {
      // The old key comes only when the key changed (or with REPLICA IDENTITY FULL).
      const oldKey = store.keyOfRow(change.key ?? change.old ?? change.new);
      const row = complete(store, { ...change.new }, store.get(oldKey));
      if (store.keyOfRow(row) !== oldKey) store.delete(oldKey);
      store.put(row);
    } else {
      const keyRow = change.key ?? change.old;
      if (keyRow === null) {
        throw new Error(`a delete from '${store.schema.name}' without its key`);
      }
      store.delete(store.keyOfRow(keyRow));
    }
  }
}

/**
 * `row` with every column: an unchanged TOASTed value is not sent again (the stream leaves it
 * undefined), so it is taken from the cached row; without one, the change cannot be decoded.
 */
function complete(store: TableStore, row: RowData, cached: RowData | undefined): RowData {
  for (const { name } of store.schema.columns) {
    if (row[name] !== undefined) continue;
    if (cached === undefined || cached[name] === undefined) {
      throw new Error(
        `a change to '${store.schema.name}' lacks column '${name}' and no cached row has it`,
      );
    }
    row[name] = cached[name];
  }
  return row;
}

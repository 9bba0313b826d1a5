import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyTransaction, checkRelation } from '../../../adapters/pg/near-cache/apply.js';
import type { StreamChange, StreamRelation } from '../../../adapters/pg/near-cache/replication.js';
import type { CachedTableSchema } from '../../../adapters/pg/near-cache/schema.js';
import { TableStore } from '../../../adapters/pg/near-cache/table-store.js';

const schema: CachedTableSchema = {
  name: 'articles',
  oid: 16400,
  schemaName: 'public',
  tableName: 'articles',
  sql: '"public"."articles"',
  columns: [
    { name: 'id', typeOid: 23 },
    { name: 'slug', typeOid: 25 },
    { name: 'body', typeOid: 25 },
  ],
  primaryKey: ['id'],
  indexes: new Map([['bySlug', ['slug']]]),
};
const relation: StreamRelation = {
  relationOid: schema.oid,
  schema: 'public',
  name: 'articles',
  columns: schema.columns,
};

interface Row {
  id: number;
  slug: string;
  body: string;
}

type Command =
  | { kind: 'insert'; id: number; slug: string; body: string }
  | { kind: 'update'; id: number; newId: number; slug: string; body: string; toast: boolean }
  | { kind: 'delete'; id: number }
  | { kind: 'truncate' };

const id = fc.integer({ min: 1, max: 12 });
const slug = fc.constantFrom('a', 'b', 'c');
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), id, slug, body: fc.string() }),
  fc.record({
    kind: fc.constant('update' as const),
    id,
    newId: id,
    slug,
    body: fc.string(),
    toast: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('delete' as const), id }),
  fc.constant({ kind: 'truncate' as const }),
);

/**
 * Turns commands into the changes PostgreSQL would stream for them (skipping those the primary
 * would refuse: duplicate keys, missing rows), applying them to `model` as the primary would.
 */
function changesFor(commands: readonly Command[], model: Map<number, Row>): StreamChange[] {
  const changes: StreamChange[] = [];
  for (const c of commands) {
    if (c.kind === 'truncate') {
      model.clear();
      changes.push({ tag: 'truncate', relations: [relation] });
    } else if (c.kind === 'insert') {
      if (model.has(c.id)) continue;
      const row = { id: c.id, slug: c.slug, body: c.body };
      model.set(c.id, row);
      changes.push({ tag: 'insert', relation, new: { ...row } });
    } else if (c.kind === 'delete') {
      if (!model.delete(c.id)) continue;
      changes.push({
        tag: 'delete',
        relation,
        key: { id: c.id, slug: null, body: null },
        old: null,
      });
    } else {
      const old = model.get(c.id);
      if (old === undefined || (c.newId !== c.id && model.has(c.newId))) continue;
      const row = { id: c.newId, slug: c.slug, body: c.toast ? old.body : c.body };
      model.delete(c.id);
      model.set(c.newId, row);
      changes.push({
        tag: 'update',
        relation,
        // The old key is sent only when the key changed; an unchanged TOASTed value not at all.
        key: c.newId === c.id ? null : { id: c.id, slug: null, body: null },
        old: null,
        new: { id: c.newId, slug: c.slug, body: c.toast ? undefined : c.body },
      });
    }
  }
  return changes;
}

describe('near cache: applying the stream', () => {
  it('keeps the cached table and its index equal to the primary, transaction after transaction', () => {
    fc.assert(
      fc.property(fc.array(fc.array(command, { maxLength: 8 }), { maxLength: 12 }), (txns) => {
        const store = new TableStore(schema);
        const byOid = new Map([[schema.oid, store]]);
        const model = new Map<number, Row>();
        for (const commands of txns) {
          applyTransaction(byOid, changesFor(commands, model));
          const rows = store.filter(() => true);
          expect([...rows].sort((a, b) => Number(a['id']) - Number(b['id']))).toEqual(
            [...model.values()].sort((a, b) => a.id - b.id),
          );
          for (const s of ['a', 'b', 'c']) {
            const found = store.lookup('bySlug', store.indexKeyFromInput('bySlug', s));
            expect(found.map((row) => row['id']).sort()).toEqual(
              [...model.values()]
                .filter((row) => row.slug === s)
                .map((row) => row.id)
                .sort(),
            );
          }
          expect(rows.every((row) => Object.isFrozen(row))).toBe(true);
        }
      }),
    );
  });

  it('refuses an unchanged TOASTed value it never saw, and a relation whose columns changed', () => {
    const store = new TableStore(schema);
    const byOid = new Map([[schema.oid, store]]);
    expect(() =>
      applyTransaction(byOid, [
        {
          tag: 'update',
          relation,
          key: null,
          old: null,
          new: { id: 1, slug: 'a', body: undefined },
        },
      ]),
    ).toThrow(/lacks column 'body'/);
    expect(() =>
      checkRelation(byOid, {
        ...relation,
        columns: [...schema.columns, { name: 'extra', typeOid: 23 }],
      }),
    ).toThrow(/changed since the snapshot/);
    expect(() =>
      checkRelation(byOid, {
        ...relation,
        columns: [schema.columns[0]!, { name: 'slug', typeOid: 1043 }, schema.columns[2]!],
      }),
    ).toThrow(/changed since the snapshot/);
    expect(() => checkRelation(byOid, relation)).not.toThrow();
  });

  it('encodes keys given as a value or an object alike, and refuses others as INVALID_INPUT', () => {
    const store = new TableStore(schema);
    store.put({ id: 7, slug: 'a', body: 'x' });
    expect(store.get(store.keyFromInput(7))).toEqual({ id: 7, slug: 'a', body: 'x' });
    expect(store.get(store.keyFromInput('7'))).toBeDefined();
    expect(store.get(store.keyFromInput({ id: 7 }))).toBeDefined();
    expect(() => store.keyFromInput({ slug: 'a' })).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(() => store.keyFromInput(undefined)).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(() => store.indexKeyFromInput('nope', 'a')).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });
});

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, loadSqlParser, SqlClassifier } from '../../../adapters/pg/classify/index.js';
import { isCausewayError } from '../../../src/errors.js';
import { fixtureCatalogRow, fixtureClassifier } from './classify-catalog.js';

let classifier: SqlClassifier;
beforeAll(async () => {
  classifier = await fixtureClassifier();
  await loadSqlParser();
});

// Each row: SQL text, whether it may go to a replica.
const TABLE: ReadonlyArray<readonly [string, boolean]> = [
  ['SELECT * FROM users WHERE id = $1', true],
  ['select count(*) as n, max(id) from users', true],
  ['  (SELECT 1) UNION (SELECT 2);  ', true],
  ['VALUES (1, 2), (3, 4)', true],
  ['TABLE users', true],
  ['SHOW search_path', true],
  ['EXPLAIN SELECT * FROM users', true],
  ['EXPLAIN (ANALYZE, BUFFERS) SELECT 1', true],
  ['EXPLAIN ANALYZE DELETE FROM users', false],
  ['explain insert into t values (1)', false],
  ['WITH recent AS (SELECT * FROM orders) SELECT * FROM recent', true],
  [
    'WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t',
    true,
  ],
  ['WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM gone', false],
  ['with x as (update t set a = 1 returning a) select a from x', false],
  ['WITH x AS MATERIALIZED (SELECT 1) SELECT * FROM x', true],
  ['SELECT * FROM users FOR UPDATE', false],
  ['SELECT * FROM users FOR SHARE SKIP LOCKED', false],
  ['select * from users for no key update', false],
  ['select * from users for key share', false],
  ['SELECT * INTO backup FROM users', false],
  ["SELECT nextval('users_id_seq')", false],
  ["SELECT setval('s', 10)", false],
  ['SELECT pg_advisory_lock(42)', false],
  ['SELECT pg_catalog.lower(name) FROM users', true],
  ['SELECT public.lower(name) FROM users', false],
  ['SELECT my_function(1)', false],
  ['SELECT "nextval"(1)', false],
  ['SELECT "NEXTVAL"(1)', false],
  ['SELECT random() > 0.5', false],
  ['SELECT txid_current()', false],
  ["SELECT set_config('search_path', 'evil', false)", false],
  // user functions: STABLE routes, VOLATILE does not, nor a name with any volatile overload
  ['SELECT report_total(3)', true],
  ['SELECT public.report_total(3)', true],
  ['SELECT touch_row(3)', false],
  ['SELECT lookup(1)', false],
  ['SELECT public.lookup(1)', true],
  ['SELECT app.lookup(1)', false],
  ['SELECT concat(a, b, c, d)', true],
  // functional notation: u.touch_row is touch_row(u) when users has no such column
  ['SELECT u.touch_row FROM users u', false],
  ['SELECT (u).touch_row FROM users u', false],
  ['SELECT u.name, u.report_total FROM users u', true],
  ['SELECT a === b FROM t', false],
  ['SELECT a OPERATOR(pg_catalog.=) b FROM t', true],
  ['SELECT a OPERATOR(public.=) b FROM t', false],
  ["SELECT 'x'::stamped", false],
  ['SELECT CASE a WHEN 1 THEN 2 END FROM t', true],
  ['SELECT * FROM t ORDER BY a USING ===', false],
  ['SELECT * FROM t TABLESAMPLE SYSTEM (1)', false],
  ["SELECT data->>'k' FROM t WHERE a BETWEEN 1 AND 2 AND b LIKE 'x%'", true],
  ['SELECT x::numeric(10, 2), y::character varying(20), cast(z AS decimal(5,1)) FROM t', true],
  ['SELECT n FROM generate_series(1, 3) AS g(n)', true],
  ['SELECT n FROM generate_series(1, 3) g(n)', true],
  ['SELECT a FROM t WHERE a IN (1, 2) AND EXISTS (SELECT 1) AND b = ANY ($1)', true],
  [
    'SELECT row_number() OVER (PARTITION BY a ORDER BY b), count(*) FILTER (WHERE c) FROM t GROUP BY a, b',
    true,
  ],
  ['SELECT coalesce(a, 0), lower(b), now() FROM t', true],
  // comments and strings hide keywords, and keywords inside them never count
  ['SELECT 1 -- ; DELETE FROM users', true],
  ['SELECT 1 -- comment\r; DELETE FROM users', false],
  ['SELECT 1 /* outer /* nested */ still comment; DELETE */', true],
  ['/* SELECT */ DELETE FROM users', false],
  ['-- SELECT\nDELETE FROM users', false],
  ["SELECT 'DELETE FROM users; UPDATE' AS s", true],
  ["SELECT 'it''s; delete' AS s", true],
  ["SELECT E'\\'; DELETE FROM users; --' AS s", true],
  ['SELECT $$ ; DELETE FROM t $$ AS s', true],
  ['SELECT $tag$ $$ ; nextval( $tag$ AS s', true],
  ['SELECT "delete", "for update" FROM t', true],
  ['SELECT 1; SELECT 2', false],
  ['SELECT 1; DELETE FROM users', false],
  ["SELECT 1; SELECT ';'", false],
  ['SELECT 1\0; DELETE FROM users', false],
  // everything else goes to the primary
  ['INSERT INTO users (name) VALUES ($1)', false],
  ['UPDATE users SET name = $1', false],
  ['DELETE FROM users', false],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', false],
  ['TRUNCATE users', false],
  ['COPY users FROM STDIN', false],
  ['LOCK TABLE users', false],
  ['BEGIN', false],
  ['COMMIT', false],
  ['SET search_path TO app', false],
  ['CALL do_things()', false],
  ['DO $$ BEGIN PERFORM 1; END $$', false],
  ['LISTEN channel', false],
  ["NOTIFY channel, 'x'", false],
  ['', false],
  [';', false],
  ['SELECT /* unterminated', false],
  ["SELECT 'unterminated", false],
  ['SELECT $a$ unterminated', false],
];

describe('SqlClassifier on a catalog', () => {
  it.each(TABLE)('%s -> read-only %s', (sql, readOnly) => {
    expect(classifier.classify(sql).readOnly).toBe(readOnly);
  });

  it('gives a reason without the SQL text', () => {
    expect(classifier.classify("SELECT nextval('secret_seq')").reason).toBe('calls nextval()');
    expect(classifier.classify('SELECT 1; SELECT 2').reason).toBe('multiple statements');
    expect(classifier.classify('SELECT * FROM t FOR UPDATE').reason).toBe(
      'locking clause FOR UPDATE',
    );
    expect(classifier.classify('WITH x AS (DELETE FROM t) SELECT 1').reason).toBe(
      'contains DELETE',
    );
    expect(classifier.classify('SELECT nope(1)').reason).toBe('calls unknown function nope()');
    expect(classifier.classify('select 1').reason).toBe('select');
  });

  it('tells which statements cannot change data', () => {
    for (const sql of ['BEGIN', 'ROLLBACK', 'SAVEPOINT a', 'SET x = 1', 'SELECT 1', 'SHOW x']) {
      expect(classifier.classify(sql).mayWrite, sql).toBe(false);
    }
    for (const sql of [
      'COMMIT',
      'INSERT INTO t VALUES (1)',
      'SELECT nextval($1)',
      'CALL p()',
      'BEGIN; SELECT 1',
    ]) {
      expect(classifier.classify(sql).mayWrite, sql).toBe(true);
    }
    expect(classifier.classify('commit').command).toBe('commit');
    expect(classifier.classify('ABORT').command).toBe('rollback');
  });

  it('tells a read-only transaction from others', () => {
    for (const sql of [
      'BEGIN READ ONLY',
      'begin isolation level repeatable read, read only',
      'START TRANSACTION READ ONLY',
    ]) {
      expect(classifier.classify(sql).beginsReadOnlyTransaction, sql).toBe(true);
    }
    for (const sql of [
      'BEGIN',
      'BEGIN READ WRITE',
      'START TRANSACTION READ ONLY, READ WRITE',
      'BEGIN READ ONLY; UPDATE t SET a = 1',
      'SET TRANSACTION READ ONLY',
      'SELECT 1',
    ]) {
      expect(classifier.classify(sql).beginsReadOnlyTransaction, sql).toBe(false);
    }
  });

  it('extends the catalog with readOnlyFunctions, but never past the primary-only list', async () => {
    const extended = await fixtureClassifier({ readOnlyFunctions: ['My_Report', 'TXID_CURRENT'] });
    expect(extended.classify('SELECT my_report(1)').readOnly).toBe(true);
    expect(extended.classify('SELECT "My_Report"(1)').readOnly).toBe(false);
    expect(extended.classify('SELECT txid_current()').readOnly).toBe(false);
    expect(classifier.classify('SELECT my_report(1)').readOnly).toBe(false);
  });

  it('sends calls to the primary until it has a catalog, and caches none of those verdicts', () => {
    const bare = new SqlClassifier();
    expect(bare.classify('SELECT 1').readOnly).toBe(true);
    expect(bare.classify('SELECT lower(a) FROM t').reason).toBe('catalog not loaded');
    expect(bare.classify('SELECT a FROM t WHERE a = 1').readOnly).toBe(false);
    expect(bare.cacheLength).toBe(1);
    expect(classifySql('SELECT a::int').readOnly).toBe(false);
  });

  it('reloads the catalog on a miss, at most once a second, and forgets old verdicts', async () => {
    let loads = 0;
    let extra: Parameters<typeof fixtureCatalogRow>[0] = [];
    const reloading = new SqlClassifier();
    reloading.useCatalog(async () => {
      loads++;
      return { rows: [fixtureCatalogRow(extra)] };
    });
    await reloading.ready();
    expect(reloading.classify('SELECT created_later(1)').reason).toBe(
      'calls unknown function created_later()',
    );
    extra = [['public', 'created_later', 1, 0, false, 'i']];
    expect(reloading.classify('SELECT created_later(1)').readOnly).toBe(false); // debounced
    expect(loads).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1050));
    reloading.classify('SELECT 1'); // the next classification starts the reload
    await reloading.ready();
    await new Promise((resolve) => setImmediate(resolve));
    expect(loads).toBe(2);
    expect(reloading.classify('SELECT created_later(1)').readOnly).toBe(true);
  });

  it('counts the comparisons sorting, grouping and set operations make without naming them', async () => {
    // A user type whose `<` and `=` are volatile: any statement that may compare with them stays.
    const shady = await fixtureClassifier({}, [
      ['shady', '<', 'v'],
      ['shady', '=', 'v'],
    ]);
    for (const sql of [
      'SELECT a FROM t ORDER BY a',
      'SELECT DISTINCT a FROM t',
      'SELECT a, count(*) FROM t GROUP BY a',
      'SELECT a FROM t UNION SELECT a FROM u',
      'SELECT * FROM t JOIN u USING (id)',
      'SELECT * FROM t NATURAL JOIN u',
      'SELECT row_number() OVER (PARTITION BY a) FROM t',
      'SELECT count(DISTINCT a) FROM t',
    ]) {
      expect(shady.classify(sql).readOnly, sql).toBe(false);
      expect(classifier.classify(sql).readOnly, sql).toBe(true);
    }
    expect(shady.classify('SELECT a FROM t').readOnly).toBe(true);
  });

  it('remembers texts a replica refused as writes', async () => {
    const remembering = await fixtureClassifier();
    const sql = 'SELECT * FROM view_with_a_writing_rule';
    expect(remembering.classify(sql).readOnly).toBe(true);
    remembering.notReadOnly(sql);
    expect(remembering.classify(sql)).toMatchObject({ readOnly: false, mayWrite: true });
    expect(remembering.classify('SELECT * FROM another_view').readOnly).toBe(true);
  });

  it('caches verdicts in a bounded LRU', () => {
    const small = new SqlClassifier({ cacheSize: 2 });
    const a = small.classify('SELECT 1');
    small.classify('SELECT 2');
    expect(small.classify('SELECT 1')).toBe(a); // a hit refreshes 'SELECT 1'
    small.classify('SELECT 3'); // evicts 'SELECT 2', the least recently used
    expect(small.cacheLength).toBe(2);
    expect(small.classify('SELECT 1')).toBe(a);
  });

  it('refuses bad options with CONFIG', () => {
    expect(() => new SqlClassifier({ cacheSize: -1 })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    );
    let caught: unknown;
    try {
      new SqlClassifier({ readOnlyFunctions: [''] });
    } catch (error) {
      caught = error;
    }
    expect(isCausewayError(caught, 'CONFIG')).toBe(true);
  });

  it('never throws on arbitrary text', () => {
    const uncached = new SqlClassifier({ cacheSize: 0 });
    uncached.useCatalog(async () => ({ rows: [fixtureCatalogRow()] }));
    const sqlish = fc.stringMatching(/^[a-z ;'"$()*/\-\\E:.,0-9]*$/);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), sqlish), (text) => {
        const verdict = uncached.classify(text);
        expect(typeof verdict.readOnly).toBe('boolean');
        expect(typeof verdict.reason).toBe('string');
      }),
      { numRuns: 2000 },
    );
  });

  it('never calls a text read-only when a write follows it on a new line', () => {
    fc.assert(
      fc.property(fc.string(), (prefix) => {
        expect(classifier.classify(`${prefix}\n; DELETE FROM t`).readOnly).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });
});

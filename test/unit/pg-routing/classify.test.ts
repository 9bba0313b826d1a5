import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifySql, SqlClassifier } from '../../../adapters/pg/classify.js';
import { isCausewayError } from '../../../src/errors.js';

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

describe('classifySql', () => {
  it.each(TABLE)('%s -> read-only %s', (sql, readOnly) => {
    expect(classifySql(sql).readOnly).toBe(readOnly);
  });

  it('gives a reason without the SQL text', () => {
    expect(classifySql("SELECT nextval('secret_seq')").reason).toBe('calls nextval()');
    expect(classifySql('SELECT 1; SELECT 2').reason).toBe('multiple statements');
    expect(classifySql('SELECT * FROM t FOR UPDATE').reason).toBe('locking clause FOR UPDATE');
    expect(classifySql('WITH x AS (DELETE FROM t) SELECT 1').reason).toBe('contains DELETE');
    expect(classifySql('select 1').reason).toBe('select');
  });

  it('tells which statements cannot change data', () => {
    for (const sql of ['BEGIN', 'ROLLBACK', 'SAVEPOINT a', 'SET x = 1', 'SELECT 1']) {
      expect(classifySql(sql).mayWrite, sql).toBe(false);
    }
    for (const sql of ['COMMIT', 'INSERT INTO t VALUES (1)', 'SELECT nextval($1)', 'CALL p()']) {
      expect(classifySql(sql).mayWrite, sql).toBe(true);
    }
    expect(classifySql('commit').command).toBe('commit');
  });

  it('extends the allow-list by option', () => {
    const classifier = new SqlClassifier({ readOnlyFunctions: ['My_Report'] });
    expect(classifier.classify('SELECT my_report(1)').readOnly).toBe(true);
    expect(classifySql('SELECT my_report(1)').readOnly).toBe(false);
  });

  it('caches verdicts in a bounded LRU', () => {
    const classifier = new SqlClassifier({ cacheSize: 2 });
    const a = classifier.classify('SELECT 1');
    classifier.classify('SELECT 2');
    expect(classifier.classify('SELECT 1')).toBe(a); // a hit refreshes 'SELECT 1'
    classifier.classify('SELECT 3'); // evicts 'SELECT 2', the least recently used
    expect(classifier.cacheLength).toBe(2);
    expect(classifier.classify('SELECT 1')).toBe(a);
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
    const classifier = new SqlClassifier({ cacheSize: 0 });
    const sqlish = fc.stringMatching(/^[a-z ;'"$()*/\-\\E:.,0-9]*$/);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), sqlish), (text) => {
        const verdict = classifier.classify(text);
        expect(typeof verdict.readOnly).toBe('boolean');
        expect(typeof verdict.reason).toBe('string');
      }),
      { numRuns: 2000 },
    );
  });

  it('never calls a text read-only when a write follows it on a new line', () => {
    fc.assert(
      fc.property(fc.string(), (prefix) => {
        expect(classifySql(`${prefix}\n; DELETE FROM t`).readOnly).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });
});

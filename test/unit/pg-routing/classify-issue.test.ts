import { beforeAll, describe, expect, it } from 'vitest';
import type { SqlClassifier } from '../../../adapters/pg/classify/index.js';
import { assertPreparable } from '../../../adapters/pg/participant.js';
import { fixtureClassifier } from './classify-catalog.js';

// The cases of issue 11 (items 1, 2 and 4), each of which the hand-written lexer got wrong.

let classifier: SqlClassifier;
beforeAll(async () => {
  classifier = await fixtureClassifier();
});

describe('a text of several statements counts as a write (issue 11, item 1)', () => {
  it.each([
    'BEGIN; UPDATE items SET v = 1; COMMIT',
    'START TRANSACTION; UPDATE items SET v = 1; COMMIT',
    "SET statement_timeout = '5s'; UPDATE items SET v = 1",
    'SHOW search_path; UPDATE items SET v = 1',
    'LISTEN items; UPDATE items SET v = 1',
    'DISCARD PLANS; UPDATE items SET v = 1',
  ])('%s', (sql) => {
    const verdict = classifier.classify(sql);
    expect(verdict.readOnly).toBe(false);
    expect(verdict.mayWrite).toBe(true);
  });
});

describe('calls the catalog does not vouch for stay on the primary (issue 11, item 2)', () => {
  it.each([
    // an alias that is also a keyword
    'SELECT pg_try_advisory_lock(42) AS materialized',
    // a column definition list after a function of unknown volatility, and of a volatile one
    'SELECT * FROM f(43) AS (ok boolean)',
    'SELECT * FROM touch_row(43) AS (ok boolean)',
    // PostgreSQL ends a -- comment at a carriage return too
    'SELECT 1 -- note\r, pg_advisory_lock(1)',
    'SELECT 1 -- note\r, "pg_try_advisory_lock"(7)',
    // U+212A KELVIN SIGN lower-cases to "k" in JavaScript, not in PostgreSQL: no such function
    'SELECT ran\u212A() OVER ()',
  ])('%s', (sql) => {
    expect(classifier.classify(sql).readOnly).toBe(false);
  });

  it('keeps a Kelvin sign apart from "k" in readOnlyFunctions too', async () => {
    const extended = await fixtureClassifier({ readOnlyFunctions: ['Kelvin'] });
    expect(extended.classify('SELECT \u212Aelvin()').readOnly).toBe(false);
    expect(extended.classify('SELECT KELVIN()').readOnly).toBe(true);
  });
});

describe('a 2PC branch refuses transaction control and session effects (issue 11, item 4)', () => {
  it.each([
    'COMMIT',
    'ROLLBACK',
    'END',
    'ABORT',
    "PREPARE TRANSACTION 'x'",
    'INSERT INTO t VALUES (1); COMMIT',
    'SELECT "pg_advisory_lock"(1)',
    'SELECT pg_catalog."pg_try_advisory_lock_shared"(1)',
    'SELECT U&"pg_adv\\0069sory_lock"(1)',
    'CREATE TEMP TABLE scratch (a int)',
    'SELECT 1 INTO TEMPORARY scratch',
    'DECLARE c CURSOR WITH HOLD FOR SELECT 1',
    'LISTEN channel',
    "SELECT pg_notify('channel', 'x')",
  ])('%s', async (sql) => {
    await expect(assertPreparable(sql)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it.each([
    'SAVEPOINT a',
    'ROLLBACK TO SAVEPOINT a',
    'RELEASE a',
    "SELECT 'COMMIT', pg_advisory_xact_lock(1)",
  ])('lets %s through', async (sql) => {
    await expect(assertPreparable(sql)).resolves.toBeUndefined();
  });
});

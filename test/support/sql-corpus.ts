import fc from 'fast-check';

/**
 * A corpus of SQL statements written for Causeway's classifier tests: statements generated from
 * grammar pieces with fast-check (a fixed seed, so the corpus is the same on every run), plus the
 * shapes of the SELECTs that ORMs emit (Kysely, Knex, Drizzle, TypeORM, Sequelize, Prisma). All
 * run against the tables of `CORPUS_SCHEMA_SQL`, found through the search path.
 */

/** What the generator meant a statement to be (the oracle decides what it really is). */
export type CorpusKind = 'query' | 'write' | 'session' | 'multi';

export interface CorpusStatement {
  readonly sql: string;
  readonly kind: CorpusKind;
  /** Where it came from, e.g. `'generated'` or `'orm:prisma'`. */
  readonly origin: string;
}

export const CORPUS_SCHEMA = 'causeway_differential';

/** Tables, a sequence and functions of each volatility the corpus uses. */
export const CORPUS_SCHEMA_SQL = `
DROP SCHEMA IF EXISTS ${CORPUS_SCHEMA} CASCADE;
CREATE SCHEMA ${CORPUS_SCHEMA};
SET LOCAL search_path = ${CORPUS_SCHEMA}, public;
CREATE TABLE orgs (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text, data jsonb NOT NULL,
  created_at timestamptz NOT NULL, org_id int REFERENCES orgs, active boolean NOT NULL);
CREATE TABLE posts (id int PRIMARY KEY, user_id int REFERENCES users, title text NOT NULL,
  tags text[] NOT NULL, score numeric(10, 2) NOT NULL, published_at timestamptz);
CREATE SEQUENCE ticket_seq;
INSERT INTO orgs SELECT i, 'org ' || i FROM generate_series(1, 3) i;
INSERT INTO users SELECT i, 'user' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'u' || i || '@example.com' END,
  jsonb_build_object('k', i, 'a', jsonb_build_object('b', i * 2)),
  timestamptz '2026-01-01' + i * interval '1 day', 1 + i % 3, i % 2 = 0
  FROM generate_series(1, 12) i;
INSERT INTO posts SELECT i, 1 + i % 12, 'post ' || i, ARRAY['t' || i % 4, 'all'], i * 1.5,
  timestamptz '2026-02-01' + i * interval '1 hour' FROM generate_series(1, 30) i;
CREATE FUNCTION label(id int) RETURNS text STABLE LANGUAGE sql
  AS $$ SELECT name FROM ${CORPUS_SCHEMA}.users WHERE users.id = label.id $$;
CREATE FUNCTION twice(n int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT n * 2 $$;
CREATE FUNCTION ticket(u users) RETURNS bigint VOLATILE LANGUAGE sql
  AS $$ SELECT nextval('${CORPUS_SCHEMA}.ticket_seq') $$;
CREATE FUNCTION bump(n int) RETURNS int VOLATILE LANGUAGE sql
  AS $$ UPDATE ${CORPUS_SCHEMA}.posts SET score = score WHERE id = -n RETURNING n $$;
`;

const pick = <T>(...items: T[]) => fc.constantFrom(...items);
const small = fc.integer({ min: 1, max: 12 });

/** Expressions over `u` (a users row) that run on a standby. */
const readOnlyExpression = fc.oneof(
  pick('u.id', 'u.name', 'u.email', 'u.data', 'u.created_at', 'u.active', 'u.org_id'),
  pick(
    'lower(u.name)',
    'upper(u.email)',
    'length(u.name)',
    "coalesce(u.email, 'none')",
    'u.id + 1',
    'u.id * 2',
    "u.data->>'k'",
    "u.data->'a'",
    "u.data #>> '{a,b}'",
    'jsonb_typeof(u.data)',
    "to_char(u.created_at, 'YYYY-MM')",
    "date_trunc('day', u.created_at)",
    'extract(year FROM u.created_at)',
    'now()',
    'current_date',
    'current_user',
    'md5(u.name)',
    "concat(u.name, '-', u.id)",
    "format('%s <%s>', u.name, u.email)",
    'greatest(u.id, 3)',
    'nullif(u.id, 2)',
    "CASE WHEN u.active THEN 'y' ELSE 'n' END",
    "CASE u.id WHEN 1 THEN 'one' ELSE 'other' END",
    "u.name || '!'",
    'array_length(ARRAY[1, 2, u.id], 1)',
    '(SELECT count(*) FROM posts p WHERE p.user_id = u.id)',
    'EXISTS (SELECT 1 FROM posts p WHERE p.user_id = u.id AND p.score > 10)',
    'u.id::text',
    'u.id::bigint',
    'u.created_at::date',
    'CAST(u.id AS numeric(10, 2))',
    "u.name ILIKE 'user1%'",
    "u.name ~ '^user'",
    'row_number() OVER (ORDER BY u.id)',
    'count(*) OVER ()',
    'label(u.id)',
    'twice(u.id)',
    "current_setting('search_path')",
    'pg_backend_pid()',
    'version()',
    "to_jsonb(u.name) || jsonb_build_object('id', u.id)",
    "jsonb_path_exists(u.data, '$.k')",
    "u.created_at AT TIME ZONE 'UTC'",
    "'2026-01-01'::date + u.id",
    // STABLE and runs on a standby, but reports the session's own transaction: primary-only
    'txid_current_if_assigned()',
  ),
);

/** Expressions that write, lock, set or assign: none may reach a replica. */
const primaryOnlyExpression = pick(
  'random()',
  'clock_timestamp()',
  'gen_random_uuid()',
  "nextval('ticket_seq')",
  'pg_try_advisory_lock(u.id + 1000)',
  'pg_try_advisory_lock_shared(u.id + 2000)',
  "set_config('causeway.probe', u.name, false)",
  'txid_current()',
  'pg_current_xact_id()',
  'bump(u.id)',
  'u.ticket',
  '"pg_try_advisory_lock"(u.id + 3000)',
  "setval('ticket_seq', 5)",
  'pg_is_in_recovery()',
  'timeofday()',
);

const predicate = fc.oneof(
  small.map((n) => `u.id = ${n}`),
  small.map((n) => `u.id < ${n}`),
  pick('u.id IN (1, 2, 3)', 'u.id BETWEEN 2 AND 6', "u.name LIKE 'user1%'", 'u.email IS NULL'),
  pick('u.active', 'NOT u.active', "u.data ? 'k'", 'u.data @> \'{"k": 1}\''),
  pick('u.id = ANY (ARRAY[1, 2])', "u.created_at > now() - interval '400 days'"),
  pick("u.org_id IN (SELECT id FROM orgs WHERE name <> 'x')", "u.name IS DISTINCT FROM 'b'"),
);

const source = pick(
  'users u',
  'users u JOIN posts p ON p.user_id = u.id',
  'users u LEFT JOIN LATERAL (SELECT max(p.score) AS top FROM posts p WHERE p.user_id = u.id) l ON true',
  'users u CROSS JOIN generate_series(1, 2) g(n)',
  'users AS u INNER JOIN orgs o ON o.id = u.org_id',
);

const tail = fc.oneof(
  fc.constant(''),
  pick(' ORDER BY u.id', ' ORDER BY u.id DESC LIMIT 5', ' ORDER BY 1 LIMIT 3 OFFSET 2'),
  small.map((n) => ` LIMIT ${n}`),
);

/** A SELECT over users, `volatile` items drawn from `primaryOnlyExpression` at that rate. */
function selectOf(items: fc.Arbitrary<string>) {
  return fc
    .record({
      items: fc.array(items, { minLength: 1, maxLength: 4 }),
      from: source,
      where: fc.option(fc.array(predicate, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      tail,
    })
    .map(
      ({ items: list, from, where, tail: end }) =>
        `SELECT ${list.join(', ')} FROM ${from}${where === undefined ? '' : ` WHERE ${where.join(' AND ')}`}${end}`,
    );
}

const readOnlySelect = selectOf(readOnlyExpression);
const anySelect = selectOf(
  fc.oneof({ weight: 4, arbitrary: readOnlyExpression }, primaryOnlyExpression),
);

/** Shapes around a SELECT: CTEs, set operations, EXPLAIN, aggregates. */
const query: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: anySelect },
  {
    weight: 1,
    arbitrary: readOnlySelect.map(
      (select) => `WITH recent AS MATERIALIZED (${select}) SELECT count(*) FROM recent`,
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(small, predicate)
      .map(
        ([n, where]) =>
          `SELECT u.org_id, count(*), max(u.id), string_agg(u.name, ',' ORDER BY u.name) FROM users u WHERE ${where} GROUP BY u.org_id HAVING count(*) >= ${n % 3}`,
      ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(small, small)
      .map(
        ([a, b]) =>
          `(SELECT id FROM users WHERE id = ${a}) UNION ALL (SELECT id FROM posts WHERE id = ${b})`,
      ),
  },
  { weight: 1, arbitrary: readOnlySelect.map((select) => `EXPLAIN ${select}`) },
  {
    weight: 1,
    arbitrary: pick(
      'VALUES (1, 2), (3, 4)',
      'TABLE orgs',
      'SELECT 1',
      "SELECT 'DELETE FROM users; UPDATE' AS s",
      'SELECT $$ ; nextval( $$ AS s',
      'SELECT 1 -- ; DELETE FROM users',
      'SELECT 1 /* nested /* comment */ DELETE */',
      'WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t',
      'SELECT p.title, unnest(p.tags) FROM posts p WHERE p.id < 4',
      'SELECT * FROM generate_series(1, 3) AS g(n)',
      'SELECT "u"."id" FROM users AS "u" WHERE "u"."name" = \'user1\'',
      // read-only, yet kept on the primary: a sampling method is a function the walker does not
      // look up (a lost offload the report shows)
      'SELECT count(*) FROM posts TABLESAMPLE BERNOULLI (50) REPEATABLE (7)',
    ),
  },
);

/** Statements that are not single plain queries. */
const notQuery: fc.Arbitrary<Omit<CorpusStatement, 'origin'>> = fc.oneof(
  fc
    .tuple(readOnlySelect, pick(' FOR UPDATE', ' FOR SHARE', ' FOR NO KEY UPDATE SKIP LOCKED'))
    .map(([select, lock]) => ({
      sql: `${select.replace(/ (ORDER BY|LIMIT).*$/, '')}${lock}`,
      kind: 'write' as const,
    })),
  small.map((n) => ({
    sql: `WITH d AS (UPDATE posts SET score = score WHERE id = ${-n} RETURNING *) SELECT * FROM d`,
    kind: 'write' as const,
  })),
  small.map((n) => ({ sql: `SELECT * INTO TEMP scratch_${n} FROM users`, kind: 'write' as const })),
  small.map((n) => ({
    sql: `UPDATE users SET name = name WHERE id = ${-n}`,
    kind: 'write' as const,
  })),
  small.map((n) => ({
    sql: `INSERT INTO orgs (id, name) VALUES (${-n}, 'x') RETURNING id`,
    kind: 'write' as const,
  })),
  small.map((n) => ({ sql: `DELETE FROM posts WHERE id = ${-n}`, kind: 'write' as const })),
  pick(
    { sql: "SET statement_timeout = '5s'", kind: 'session' as const },
    { sql: 'SHOW search_path', kind: 'query' as const },
    { sql: 'BEGIN READ ONLY', kind: 'session' as const },
    { sql: 'SELECT 1; SELECT 2', kind: 'multi' as const },
    { sql: 'BEGIN; UPDATE users SET name = name WHERE id = -1; COMMIT', kind: 'multi' as const },
    {
      sql: "SET statement_timeout = '5s'; UPDATE users SET name = name WHERE id = -1",
      kind: 'multi' as const,
    },
    { sql: 'LISTEN causeway_probe', kind: 'session' as const },
  ),
);

const statement: fc.Arbitrary<Omit<CorpusStatement, 'origin'>> = fc.oneof(
  { weight: 5, arbitrary: query.map((sql) => ({ sql, kind: 'query' as const })) },
  { weight: 1, arbitrary: notQuery },
);

/** SELECTs in the shapes each ORM emits (quoted identifiers, LIMIT/OFFSET, JSON, lateral). */
function ormStatements(): CorpusStatement[] {
  const out: CorpusStatement[] = [];
  for (let id = 1; id <= 20; id++) {
    const limit = 1 + (id % 5);
    const offset = id % 3;
    const shapes: Record<string, string> = {
      kysely: `select "u"."id", "u"."name", "o"."name" as "org" from "users" as "u" inner join "orgs" as "o" on "o"."id" = "u"."org_id" where "u"."id" = ${id} limit ${limit}`,
      knex: `select "id", "name", "email" from "users" where "id" = ${id} and "active" = true order by "created_at" desc limit ${limit} offset ${offset}`,
      drizzle: `select "id", "name", "data"->>'k' from "users" where ("users"."id" = ${id} or "users"."email" is null) order by "users"."id" limit ${limit}`,
      typeorm: `SELECT "User"."id" AS "User_id", "User"."name" AS "User_name", "Post"."title" AS "Post_title" FROM "users" "User" LEFT JOIN "posts" "Post" ON "Post"."user_id"="User"."id" WHERE "User"."id" IN (${id}, ${id + 1}) LIMIT ${limit}`,
      sequelize: `SELECT "id", "name", "created_at" AS "createdAt" FROM "users" AS "User" WHERE "User"."id" = ${id} LIMIT 1;`,
      prisma: `SELECT "${CORPUS_SCHEMA}"."users"."id", "${CORPUS_SCHEMA}"."users"."name" FROM "${CORPUS_SCHEMA}"."users" WHERE ("${CORPUS_SCHEMA}"."users"."id" = ${id} AND 1=1) ORDER BY "${CORPUS_SCHEMA}"."users"."id" ASC LIMIT ${limit} OFFSET ${offset}`,
    };
    if (id % 4 === 0) {
      shapes['kysely-lateral'] =
        `select "u"."id", "p"."top" from "users" as "u" left join lateral (select max("score") as "top" from "posts" where "posts"."user_id" = "u"."id") as "p" on true where "u"."id" > ${id}`;
      shapes['drizzle-json'] =
        `select "users"."id", coalesce(json_agg(json_build_object('title', "posts"."title")) filter (where "posts"."id" is not null), '[]') from "users" left join "posts" on "posts"."user_id" = "users"."id" where "users"."id" = ${id} group by "users"."id"`;
      shapes['typeorm-count'] =
        `SELECT COUNT(DISTINCT("User"."id")) AS "cnt" FROM "users" "User" WHERE "User"."org_id" = ${1 + (id % 3)}`;
      shapes['prisma-cte'] =
        `WITH "t" AS (SELECT "id" FROM "${CORPUS_SCHEMA}"."posts" WHERE "user_id" = ${id}) SELECT count(*) FROM "t"`;
    }
    for (const [orm, sql] of Object.entries(shapes))
      out.push({ sql, kind: 'query', origin: `orm:${orm}` });
  }
  return out;
}

/** The corpus: `generated` statements from `seed`, then the ORM shapes. */
export function sqlCorpus(generated = 1000, seed = 20261207): CorpusStatement[] {
  const drawn = fc.sample(statement, { numRuns: generated, seed });
  return [...drawn.map((s) => ({ ...s, origin: 'generated' })), ...ormStatements()];
}

/**
 * Gids from the database are outside input: another tool (or a hostile user of the database)
 * can prepare transactions whose gids start with this coordinator's prefix, and decision rows
 * can hold any gid and participant list. Recovery over real PostgreSQL, fuzzed for a bounded
 * number of runs: a round always completes, touches no branch that is not one of this
 * coordinator's participants' (a gid `parseGid` refuses, or another participant's), and the
 * operator CLI lists such gids without failing.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinatorPrefix, tryParseGid } from '../../../src/txn/gid.js';
import { testEnv } from '../../harness/env.js';
import { runTsx } from '../../support/child-process.js';
import { namespace, type Pair, pair } from '../txn/helpers.js';

const RUNS = 25;
const CLI = new URL('../../../src/cli/causeway.ts', import.meta.url).pathname;
const PARTICIPANTS = new Set(['users', 'perms']);

/** A string literal for `PREPARE TRANSACTION`, which takes no parameters. */
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

describe('recovery with hostile gids in pg_prepared_xacts and the decision log', () => {
  let db: Pair;
  let prefix: string;

  beforeAll(async () => {
    const env = testEnv();
    db = await pair(env.primaryUrl, env.primary2Url, namespace('fuzz'));
    prefix = coordinatorPrefix(db.coordinatorId);
    // The decision table exists before rows are slipped into it.
    await db.coordinator().recover();
  });

  afterAll(async () => {
    expect(await db.prepared()).toEqual([]);
    await db.drop();
  });

  async function prepareForeign(pool: pg.Pool, gid: string): Promise<void> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`PREPARE TRANSACTION ${literal(gid)}`);
    } finally {
      client.release();
    }
  }

  async function rollBackAll(pool: pg.Pool): Promise<void> {
    const { rows } = await pool.query(
      'SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, $1)',
      [prefix],
    );
    for (const { gid } of rows) await pool.query(`ROLLBACK PREPARED ${literal(gid)}`);
  }

  const hex = fc.stringMatching(/^[0-9a-f]{32}$/);
  const printable = fc.string({
    unit: fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      fc.constantFrom('\u001b[31m', '\n', 'é', '\u202e'),
    ),
    maxLength: 40,
  });
  const suffixArb = fc.oneof(
    printable,
    fc.tuple(hex, printable).map(([h, p]) => `${h}:${p}`),
    fc
      .tuple(hex, fc.constantFrom('users', 'perms', 'mallory', 'users:extra', ''))
      .map(([h, p]) => `${h}:${p}`),
    hex.map((h) => h.toUpperCase()),
    hex.map((h) => h.slice(1)),
  );
  const gidArb = suffixArb
    .map((suffix) => `${prefix}${suffix}`)
    .filter((gid) => Buffer.byteLength(gid) <= 199);
  const decisionArb = fc.record({
    gid: gidArb,
    decision: fc.constantFrom('commit', 'abort'),
    participants: fc.array(fc.oneof(fc.constantFrom('users', 'perms', 'mallory', ''), printable), {
      maxLength: 3,
    }),
  });

  /** A branch recovery may act on: one of this coordinator's, for one of its participants. */
  const ours = (gid: string) => {
    const parsed = tryParseGid(gid);
    return parsed?.coordinatorId === db.coordinatorId && PARTICIPANTS.has(parsed.participant ?? '');
  };

  it(`a round completes and leaves every foreign branch prepared (${RUNS} runs)`, async () => {
    const coordinator = db.coordinator({ prepareTimeoutMs: 0, abortRetentionMs: 0 });
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(gidArb, { minLength: 1, maxLength: 3 }),
          fc.array(decisionArb, { maxLength: 2 }),
          fc.boolean(),
          async (gids, decisions, onSecond) => {
            const pool = onSecond ? db.perms : db.users;
            try {
              for (const gid of gids) await prepareForeign(pool, gid);
              for (const { gid, decision, participants } of decisions) {
                await db.users.query(
                  `INSERT INTO ${db.logTable} (gid, decision, participants) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING`,
                  [gid, decision, participants],
                );
              }
              const report = await coordinator.recover();
              expect(report.failures).toEqual([]);
              const { rows } = await pool.query(
                'SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, $1)',
                [prefix],
              );
              const left = new Set(rows.map((row) => row.gid as string));
              for (const gid of gids.filter((g) => !ours(g))) expect(left.has(gid)).toBe(true);
            } finally {
              await rollBackAll(pool);
              await db.users.query(`DELETE FROM ${db.logTable}`);
            }
          },
        ),
        { numRuns: RUNS },
      );
    } finally {
      await coordinator.close();
    }
  });

  it('the operator CLI lists hostile gids as JSON and exits 0', async () => {
    const env = testEnv();
    const gids = [
      `${prefix}'; DROP TABLE x; --`,
      `${prefix}\u001b[31mred\n`,
      `${prefix}${'f'.repeat(32)}:mallory`,
    ];
    try {
      for (const gid of gids) await prepareForeign(db.users, gid);
      const listed = await runTsx(CLI, [
        'txn',
        'list',
        '--json',
        '--coordinator',
        db.coordinatorId,
        '-p',
        `users=${env.primaryUrl}`,
        '--log',
        env.primaryUrl,
        '--log-table',
        db.logTable,
      ]);
      expect(listed.stderr).toBe('');
      expect(listed.code).toBe(0);
      const rows = JSON.parse(listed.stdout) as { gid: string; participant: string | null }[];
      expect(rows.map((row) => row.gid).sort()).toEqual([...gids].sort());
    } finally {
      await rollBackAll(db.users);
    }
  });
});

import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinatorPrefix } from '../../../src/txn/gid.js';
import { testEnv } from '../../harness/env.js';
import { runTsx } from '../../support/child-process.js';
import { namespace, type Pair, pair } from './helpers.js';

const CLI = fileURLToPath(new URL('../../../src/cli/causeway.ts', import.meta.url));

function cli(args: string[], env: Record<string, string> = {}) {
  return runTsx(CLI, args, { env });
}

describe('causeway txn list|resolve', () => {
  let db: Pair;
  let connection: string[];

  /** Leaves a transaction prepared on both databases, as a coordinator crash would. */
  async function strand(id: number, crashAt: 'after-decision' | 'before-decision') {
    let gid = '';
    const coordinator = db.coordinator({
      // Both branches prepared: the decision is not committed with the log's participant.
      optimizations: { commitWithLog: false },
      hooks: {
        onStep: (step, info) => {
          gid = info.gid;
          if (step === crashAt || (crashAt === 'before-decision' && step === 'after-prepare')) {
            if (crashAt === 'after-decision' || info.participant === 'perms')
              throw new Error('crash');
          }
        },
      },
    });
    await coordinator
      .transaction(async (tx) => {
        await tx.participant('users').query(`INSERT INTO ${db.table} VALUES ($1)`, [id]);
        await tx.participant('perms').query(`INSERT INTO ${db.table} VALUES ($1)`, [id]);
      })
      .catch(() => {});
    await coordinator.close();
    return gid;
  }

  beforeAll(async () => {
    const env = testEnv();
    db = await pair(env.primaryUrl, env.primary2Url, namespace('cli'));
    connection = [
      '-p',
      `users=${env.primaryUrl}`,
      '-p',
      `perms=${env.primary2Url}`,
      '--log',
      env.primaryUrl,
      '--log-table',
      db.logTable,
    ];
  });

  afterAll(async () => {
    expect(await db.prepared()).toEqual([]);
    await db.drop();
  });

  it('prints usage and exits 2 on bad usage', async () => {
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toContain('causeway txn list');
    const unknown = await cli(['txn', 'frobnicate']);
    expect(unknown.code).toBe(2);
    const noParticipants = await cli(['txn', 'list'], { CAUSEWAY_PARTICIPANTS: '' });
    expect(noParticipants.code).toBe(2);
    const badGid = await cli(['txn', 'resolve', "cw:x'y", ...connection]);
    expect(badGid.code).toBe(2);
    expect(badGid.stderr).toContain('not a Causeway gid');
  });

  it('lists a committed-but-unfinished transaction and resolves it to its logged decision', async () => {
    const gid = await strand(1, 'after-decision');
    const listed = await cli(['txn', 'list', '--coordinator', db.coordinatorId, ...connection]);
    expect(listed.code).toBe(0);
    const lines = listed.stdout.split('\n').filter((line) => line.includes(gid));
    expect(lines).toHaveLength(2);
    for (const line of lines)
      expect(line).toMatch(new RegExp(`${db.coordinatorId}\\s+\\w+\\s+commit`));
    const json = JSON.parse(
      (await cli(['txn', 'list', '--json', '-c', db.coordinatorId, ...connection])).stdout,
    ) as { gid: string; participant: string; decision: string; server: string }[];
    expect(json.map((row) => [row.participant, row.server, row.decision]).sort()).toEqual([
      ['perms', 'perms', 'commit'],
      ['users', 'users', 'commit'],
    ]);

    const contradict = await cli(['txn', 'resolve', gid, '--rollback', ...connection]);
    expect(contradict.code).toBe(3);
    expect(contradict.stderr).toContain('logged decision');
    expect(await db.prepared()).toHaveLength(2);

    const resolved = await cli(['txn', 'resolve', gid, ...connection]);
    expect(resolved.code).toBe(0);
    expect(resolved.stdout).toContain('committed');
    expect(await db.rows()).toEqual({ users: [1], perms: [1] });
    expect(await db.prepared()).toEqual([]);
  });

  it('refuses to guess without a decision, and records an explicit rollback first', async () => {
    const gid = await strand(2, 'before-decision');
    expect(await db.prepared()).toHaveLength(2);
    const listed = await cli(['txn', 'list', '-c', db.coordinatorId, ...connection]);
    expect(listed.stdout).toMatch(/none/);
    const guess = await cli(['txn', 'resolve', gid, ...connection]);
    expect(guess.code).toBe(3);
    expect(guess.stderr).toContain('--commit or --rollback');
    const rolled = await cli(['txn', 'resolve', `${gid}:users`, '--rollback', ...connection]);
    expect(rolled.code).toBe(0);
    expect(await db.prepared()).toEqual([]);
    expect((await db.rows()).users).not.toContain(2);
    expect((await db.decisions()).find((d) => d.gid === gid)?.decision).toBe('abort');
    const empty = await cli(['txn', 'list', '-c', db.coordinatorId, ...connection]);
    expect(empty.stdout).toContain('no prepared transactions');
  });

  it('acts only on branches it owns: a foreign gid sharing the prefix is skipped, nothing recorded for it', async () => {
    const gid = await strand(3, 'before-decision');
    const client = new pg.Client({ connectionString: testEnv().primaryUrl });
    await client.connect();
    // Another tool's gids that start with the transaction's: one no Causeway gid parses as,
    // one that parses but names a participant that is not on this server.
    const foreign = [`${gid}:users x`, `${gid}:perms`];
    try {
      for (const other of foreign) {
        await client.query('BEGIN');
        await client.query(`PREPARE TRANSACTION '${other}'`);
      }
      const rolled = await cli(['txn', 'resolve', gid, '--rollback', ...connection]);
      expect(rolled.stderr).toContain('not a branch of');
      expect(rolled.code).toBe(0);
      // Both real branches rolled back; the foreign ones untouched.
      const left = (
        await client.query('SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, $1)', [gid])
      ).rows.map((row) => String(row.gid));
      expect(left.sort()).toEqual([...foreign].sort());
      expect((await db.prepared()).sort()).toEqual([...foreign].sort());
      expect((await db.rows()).perms).not.toContain(3);

      // A transaction with nothing of its own prepared gets no decision because of a stranger.
      const stranger = `${coordinatorPrefix(db.coordinatorId)}${'ab'.repeat(16)}`;
      await client.query('BEGIN');
      await client.query(`PREPARE TRANSACTION '${stranger}:users y'`);
      foreign.push(`${stranger}:users y`);
      const none = await cli(['txn', 'resolve', stranger, '--commit', ...connection]);
      expect(none.code).toBe(0);
      expect(none.stdout).toContain('nothing recorded');
      expect((await db.decisions()).find((d) => d.gid === stranger)).toBeUndefined();
      const misnamed = await cli([
        'txn',
        'resolve',
        `${stranger}:nobody`,
        '--commit',
        ...connection,
      ]);
      expect(misnamed.code).toBe(2);
      expect((await db.decisions()).find((d) => d.gid === stranger)).toBeUndefined();
    } finally {
      for (const other of foreign)
        await client.query(`ROLLBACK PREPARED '${other}'`).catch(() => {});
      await client.end();
    }
  });

  it('shows control characters in a gid escaped, so they cannot act on the terminal', async () => {
    const client = new pg.Client({ connectionString: testEnv().primaryUrl });
    await client.connect();
    const gid = `${coordinatorPrefix(db.coordinatorId)}\u001b]0;owned\u0007:x`;
    try {
      await client.query('BEGIN');
      await client.query(`PREPARE TRANSACTION '${gid}'`);
      const listed = await cli(['txn', 'list', '-c', db.coordinatorId, ...connection]);
      const controls = [...listed.stdout].filter((c) => c !== '\n' && c.codePointAt(0)! < 0x20);
      expect(controls).toEqual([]);
      expect(listed.stdout).toContain('\\u{1b}]0;owned\\u{7}:x');
    } finally {
      await client.query(`ROLLBACK PREPARED '${gid}'`).catch(() => {});
      await client.end();
    }
  });
});

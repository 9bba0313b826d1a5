import { describe, expect, it } from 'vitest';
import { branchGid } from '../../../src/txn/gid.js';
import { nothingPrepared, rejection, setup, signup } from './setup.js';

describe('TwoPhaseCoordinator optimizations', () => {
  it('commits a single participant in one phase, without a decision record', async () => {
    const { coordinator, users, log } = setup();
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query('UPDATE users SET x = 1');
    });
    expect(users.commits).toEqual([
      expect.objectContaining({
        gid: '',
        statements: [{ text: 'UPDATE users SET x = 1', values: [] }],
      }),
    ]);
    expect(await log.get(gid)).toBeUndefined();
    nothingPrepared(users);
  });

  it('uses two-phase commit for a single participant when onePhase is off', async () => {
    const { coordinator, users, log } = setup({ optimizations: { onePhase: false } });
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query('UPDATE users SET x = 1');
    });
    expect(users.commits.map((commit) => commit.gid)).toEqual([branchGid(gid, 'users')]);
    expect((await log.get(gid))?.participants).toEqual(['users']);
  });

  it('one phase: a refused commit is TXN_ABORTED, a lost reply TXN_IN_DOUBT (decision unknown)', async () => {
    const { coordinator, users } = setup();
    const write = () =>
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query('INSERT 1');
      });
    users.failNext('local-commit');
    expect(await rejection(write())).toMatchObject({ code: 'TXN_ABORTED' });
    expect(users.commits).toEqual([]);
    users.failNext('local-commit-reply-lost');
    expect(await rejection(write())).toMatchObject({
      code: 'TXN_IN_DOUBT',
      details: { decision: 'unknown', participant: 'users' },
    });
    // It did commit: the reply alone was lost.
    expect(users.commits).toHaveLength(1);
  });

  it('ends read-only branches at once: they take no part in phase two or the decision', async () => {
    const steps: string[] = [];
    const { coordinator, users, perms, log } = setup({
      optimizations: { onePhase: false },
      hooks: { onStep: (step, info) => void steps.push(`${step} ${info.participant ?? ''}`) },
    });
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query('SELECT 1');
      await tx.participant('perms').query('INSERT 1');
    });
    expect(steps).toEqual([
      'before-prepare ',
      'after-read-only users',
      'after-prepare perms',
      'after-decision ',
      'after-commit perms',
    ]);
    expect(users.commits).toEqual([]);
    expect(perms.commits).toHaveLength(1);
    expect((await log.get(gid))?.participants).toEqual(['perms']);
    // Every branch read-only: nothing prepared, nothing logged.
    const reads = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query('SELECT 1');
      await tx.participant('perms').query('select 2');
    });
    expect(await log.get(reads.gid)).toBeUndefined();
    nothingPrepared(users, perms);
    // Switched off: read branches are prepared and committed like any other.
    const off = setup({ optimizations: { readOnly: false, onePhase: false } });
    await off.coordinator.transaction(async (tx) => {
      await tx.participant('users').query('SELECT 1');
    });
    expect(off.users.commits).toHaveLength(1);
  });

  it('aborts everything when a read-only vote cannot be taken', async () => {
    const { coordinator, users, perms } = setup();
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query('SELECT 1');
        await tx.participant('perms').query('INSERT 1');
        users.failNext('query');
      }),
    );
    expect(error).toMatchObject({ code: 'TXN_ABORTED' });
    expect(perms.commits).toEqual([]);
    nothingPrepared(users, perms);
  });

  it('writes concurrent decisions together, a lone one at once', async () => {
    const { coordinator, log } = setup({ optimizations: { batchDecisions: true } });
    await signup(coordinator, 1);
    expect(log.batches).toEqual([]);
    await Promise.all(Array.from({ length: 6 }, (_, i) => signup(coordinator, 10 + i)));
    // The first decision is written alone; the others, arriving while it is written, together.
    expect(log.batches.length).toBeGreaterThan(0);
    expect(Math.max(...log.batches)).toBeGreaterThan(1);
    expect((await log.list('')).filter((record) => record.decision === 'commit')).toHaveLength(7);
    // Off by default.
    const off = setup();
    await Promise.all(Array.from({ length: 6 }, (_, i) => signup(off.coordinator, i)));
    expect(off.log.batches).toEqual([]);
  });

  it('refuses bad optimization options with CONFIG', () => {
    const bad: Record<string, unknown>[] = [
      { optimizations: { onePhase: 'yes' } },
      { optimizations: { groupCommit: true } },
      { optimizations: 7 },
      { logParticipant: 'nobody' },
      // The memory log cannot commit in a branch.
      { logParticipant: 'users' },
    ];
    for (const options of bad) {
      expect(() => setup(options as never), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'CONFIG' }),
      );
    }
  });
});

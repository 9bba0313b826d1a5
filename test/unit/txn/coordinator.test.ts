import { describe, expect, it, vi } from 'vitest';
import { MemoryDecisionLog } from '../../../adapters/memory/decision-log.js';
import { MemoryLeaseManager } from '../../../adapters/memory/fencing.js';
import { MemoryParticipant } from '../../../adapters/memory/participant.js';
import { isCausewayError } from '../../../src/errors.js';
import { TwoPhaseCoordinator, type TwoPhaseStep } from '../../../src/txn/coordinator.js';
import { branchGid, parseGid } from '../../../src/txn/gid.js';
import { nothingPrepared, rejection, setup, signup } from './setup.js';

describe('TwoPhaseCoordinator', () => {
  it('commits every branch and logs the commit decision', async () => {
    const { coordinator, users, perms, log } = setup();
    const { gid, outcome, result } = await signup(coordinator);
    expect(outcome).toBe('committed');
    expect(result).toBe(1);
    expect(parseGid(gid).coordinatorId).toBe('svc');
    expect(users.commits.map((commit) => commit.gid)).toEqual([branchGid(gid, 'users')]);
    expect(perms.commits[0]?.statements).toEqual([
      { text: 'INSERT INTO permissions VALUES ($1)', values: [1] },
    ]);
    expect((await log.get(gid))?.decision).toBe('commit');
    nothingPrepared(users, perms);
    // Recovery forgets a finished commit decision.
    expect((await coordinator.recover()).forgotten).toEqual([gid]);
    expect(await log.get(gid)).toBeUndefined();
  });

  it('commits a transaction that touched nothing without logging', async () => {
    const { coordinator, log } = setup();
    const { result } = await coordinator.transaction(() => 'nothing');
    expect(result).toBe('nothing');
    expect(await log.list('')).toEqual([]);
  });

  it('rejects an unknown participant with INVALID_INPUT and rolls back what began', async () => {
    const { coordinator, users, perms, log } = setup();
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query('INSERT 1');
        await tx.participant('nope').query('INSERT 2');
      }),
    );
    expect(isCausewayError(error, 'INVALID_INPUT')).toBe(true);
    expect(users.commits).toEqual([]);
    nothingPrepared(users, perms);
    expect(await log.list('')).toEqual([]);
  });

  it('aborts everything when fn throws, keeping the cause', async () => {
    const { coordinator, users, perms } = setup();
    const boom = new Error('boom');
    const error = await rejection(
      coordinator.transaction(async (tx) => {
        await tx.participant('users').query('INSERT 1');
        throw boom;
      }),
    );
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    expect((error as Error).cause).toBe(boom);
    expect(users.commits).toEqual([]);
    nothingPrepared(users, perms);
  });

  it('aborts when fn runs past its timeout and refuses later statements', async () => {
    const { coordinator, users } = setup();
    let late: unknown;
    const error = await rejection(
      coordinator.transaction(
        async (tx) => {
          await tx.participant('users').query('INSERT 1');
          await new Promise((resolve) => setTimeout(resolve, 50));
          late = await rejection(tx.participant('users').query('INSERT 2'));
        },
        { timeoutMs: 10 },
      ),
    );
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(isCausewayError(late, 'INVALID_INPUT')).toBe(true);
    expect(users.commits).toEqual([]);
  });

  it('aborts every branch when one votes no', async () => {
    const { coordinator, users, perms, log } = setup();
    perms.failNext('prepare', new Error('deferred constraint violated'));
    const error = await rejection(signup(coordinator));
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    expect(users.commits).toEqual([]);
    expect(perms.commits).toEqual([]);
    nothingPrepared(users, perms);
    expect(await log.list('')).toEqual([]);
  });

  it('rolls back a branch whose prepare reply was lost', async () => {
    const { coordinator, users, perms } = setup();
    users.failNext('prepare-reply-lost');
    const error = await rejection(signup(coordinator));
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    nothingPrepared(users, perms);
    expect(users.commits).toEqual([]);
  });

  it('aborts when a prepare outlasts prepareTimeoutMs and rolls the late branch back', async () => {
    const { coordinator, users, perms } = setup({ prepareTimeoutMs: 20 });
    perms.delayNext('prepare', 80);
    const error = await rejection(signup(coordinator));
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    expect((error as Error).message).toContain('prepareTimeoutMs');
    expect(users.preparedGids()).toEqual([]);
    // The slow prepare finishes later; the coordinator rolls it back then.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(perms.preparedGids()).toEqual([]);
    expect(perms.commits).toEqual([]);
  });

  it('queues transactions beyond maxConcurrentTransactions', async () => {
    const { coordinator, users } = setup({ maxConcurrentTransactions: 2 });
    let running = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        coordinator.transaction(async (tx) => {
          most = Math.max(most, ++running);
          await tx.participant('users').query('INSERT', [i]);
          await new Promise((resolve) => setTimeout(resolve, 5));
          running--;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(users.commits).toHaveLength(6);
  });

  it('aborts when a participant cannot begin', async () => {
    const { coordinator, users, perms } = setup();
    perms.failNext('begin');
    const error = await rejection(signup(coordinator));
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    nothingPrepared(users, perms);
    expect(users.commits).toEqual([]);
  });

  it('is in doubt when the log is unreachable; recovery then presumes abort', async () => {
    const { coordinator, users, perms, log, advance } = setup({ commitWaitMs: 20 });
    log.unreachable = true;
    const error = await rejection(signup(coordinator));
    expect(isCausewayError(error, 'TXN_IN_DOUBT')).toBe(true);
    expect((error as { details: { decision: string } }).details.decision).toBe('unknown');
    expect(users.preparedGids()).toHaveLength(1);
    log.unreachable = false;
    // Young undecided branches belong to a possibly live coordinator: left alone.
    const early = await coordinator.recover();
    expect(early.presumedAborted).toEqual([]);
    expect(users.preparedGids()).toHaveLength(1);
    advance(1_000);
    const report = await coordinator.recover();
    expect(report.presumedAborted).toHaveLength(1);
    expect(report.rolledBack).toHaveLength(2);
    nothingPrepared(users, perms);
    expect(users.commits).toEqual([]);
    expect(perms.commits).toEqual([]);
    // The abort decision is kept for the retention period, then forgotten.
    expect((await log.list(''))[0]?.decision).toBe('abort');
    advance(3_600_000);
    expect((await coordinator.recover()).forgotten).toHaveLength(1);
  });

  it('keeps committing in the background when a participant is unreachable after the decision', async () => {
    const ctx = setup({
      commitWaitMs: 30,
      hooks: {
        onStep: (step) => {
          if (step === 'after-decision') ctx.perms.unreachable = true;
        },
      },
    });
    const inDoubt = await rejection(signup(ctx.coordinator));
    expect(isCausewayError(inDoubt, 'TXN_IN_DOUBT')).toBe(true);
    expect((inDoubt as { details: unknown }).details).toMatchObject({
      decision: 'commit',
      pending: ['perms'],
    });
    expect(ctx.users.commits).toHaveLength(1);
    expect(ctx.perms.commits).toHaveLength(0);
    ctx.perms.unreachable = false;
    await vi.waitFor(() => expect(ctx.perms.commits).toHaveLength(1));
    nothingPrepared(ctx.users, ctx.perms);
    await ctx.coordinator.close();
  });

  it('leaves phase two to recovery when closed while a participant is unreachable', async () => {
    const ctx = setup({
      commitWaitMs: 10,
      hooks: {
        onStep: (step) => {
          if (step === 'after-decision') ctx.perms.unreachable = true;
        },
      },
    });
    await rejection(signup(ctx.coordinator));
    await ctx.coordinator.close();
    ctx.perms.unreachable = false;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(ctx.perms.commits).toHaveLength(0);
    expect(ctx.perms.preparedGids()).toHaveLength(1);
    const recovery = new TwoPhaseCoordinator({
      coordinatorId: 'svc',
      log: ctx.log,
      participants: { users: ctx.users, perms: ctx.perms },
    });
    expect((await recovery.recover()).committed).toHaveLength(1);
    expect(ctx.perms.commits).toHaveLength(1);
  });

  it('treats a lost commit reply as done once the branch is seen committed', async () => {
    const { coordinator, users, perms, heuristics } = setup();
    perms.failNext('commit-reply-lost');
    await signup(coordinator);
    expect(perms.commits).toHaveLength(1);
    expect(heuristics).toEqual([]);
    nothingPrepared(users, perms);
  });

  it('reports a branch rolled back behind its back as a heuristic outcome', async () => {
    const { coordinator, perms, heuristics } = setup({
      hooks: {
        onStep: async (step, { gid }) => {
          if (step === 'after-decision') await perms.rollbackPrepared(branchGid(gid, 'perms'));
        },
      },
    });
    const error = await rejection(signup(coordinator));
    expect(isCausewayError(error, 'TXN_IN_DOUBT')).toBe(true);
    expect((error as { details: { heuristic: boolean } }).details.heuristic).toBe(true);
    expect(heuristics).toEqual([
      expect.objectContaining({ participant: 'perms', decision: 'commit', observed: 'aborted' }),
    ]);
  });

  const crashes: { step: TwoPhaseStep; participant?: string; committed: boolean }[] = [
    { step: 'before-prepare', committed: false },
    { step: 'after-prepare', participant: 'users', committed: false },
    { step: 'after-prepare', participant: 'perms', committed: false },
    { step: 'after-decision', committed: true },
    { step: 'after-commit', participant: 'users', committed: true },
  ];
  for (const crash of crashes) {
    it(`recovers all or nothing after a crash at ${crash.step} ${crash.participant ?? ''}`, async () => {
      const crashError = new Error('crash');
      const { coordinator, users, perms, log, advance } = setup({
        hooks: {
          onStep: (step, info) => {
            if (step === crash.step && (crash.participant ?? info.participant) === info.participant)
              throw crashError;
          },
        },
      });
      expect(await rejection(signup(coordinator))).toBe(crashError);
      advance(1_000);
      const report = await coordinator.recover();
      expect(report.failures).toEqual([]);
      nothingPrepared(users, perms);
      expect(users.commits).toHaveLength(crash.committed ? 1 : 0);
      expect(perms.commits).toHaveLength(crash.committed ? 1 : 0);
      const decisions = await log.list('');
      if (crash.committed) expect(decisions).toEqual([]);
      else expect(decisions.every((record) => record.decision === 'abort')).toBe(true);
    });
  }

  it('obeys an abort that recovery recorded while the coordinator stalled', async () => {
    let prepared = 0;
    const ctx = setup({
      hooks: {
        onStep: async (step) => {
          if (step !== 'after-prepare' || ++prepared < 2) return;
          ctx.advance(1_000);
          const report = await ctx.coordinator.recover();
          expect(report.presumedAborted).toHaveLength(1);
        },
      },
    });
    const error = await rejection(signup(ctx.coordinator));
    expect(isCausewayError(error, 'TXN_ABORTED')).toBe(true);
    expect(ctx.users.commits).toEqual([]);
    expect(ctx.perms.commits).toEqual([]);
    nothingPrepared(ctx.users, ctx.perms);
  });

  it('lets a commit recorded first win over recovery (write-once)', async () => {
    const { log } = setup();
    const first = await log.record('cw:svc:x', 'commit', ['users']);
    const second = await log.record('cw:svc:x', 'abort', ['users']);
    expect(second).toEqual(first);
  });

  it('touches only gids with its own prefix', async () => {
    const { coordinator, users, advance } = setup();
    const branch = await users.begin();
    const foreign = branchGid('cw:other:0123456789abcdef0123456789abcdef', 'users');
    await branch.prepare(foreign);
    const lookalike = await users.begin();
    await lookalike.prepare('cw:svc2:0123456789abcdef0123456789abcdef:users');
    advance(10_000);
    const report = await coordinator.recover();
    expect(report.rolledBack).toEqual([]);
    expect(users.preparedGids()).toHaveLength(2);
  });

  it('skips a participant it cannot list and retries next round', async () => {
    const { coordinator, users, perms, advance } = setup({
      hooks: {
        onStep: (step) => {
          if (step === 'after-decision') throw new Error('crash');
        },
      },
    });
    await rejection(signup(coordinator));
    perms.failNext('list');
    perms.failNext('list');
    advance(1_000);
    const first = await coordinator.recover();
    expect(first.failures.map((failure) => failure.participant)).toEqual(['perms', 'perms']);
    expect(users.commits).toHaveLength(1);
    // The decision is kept while perms may still hold a branch.
    expect(first.forgotten).toEqual([]);
    const second = await coordinator.recover();
    expect(second.committed).toHaveLength(1);
    expect(second.forgotten).toHaveLength(1);
    nothingPrepared(users, perms);
  });

  it('runs recovery in the background until closed', async () => {
    const { coordinator, users, perms, advance } = setup({
      hooks: {
        onStep: (step) => {
          if (step === 'after-decision') throw new Error('crash');
        },
      },
    });
    await rejection(signup(coordinator));
    advance(1_000);
    coordinator.startRecovery({ intervalMs: 5 });
    await vi.waitFor(() => expect(perms.commits).toHaveLength(1));
    expect(users.commits).toHaveLength(1);
    await coordinator.close();
    await expect(coordinator.transaction(() => 1)).rejects.toMatchObject({ code: 'CONFIG' });
  });

  it('lets one recoverer per coordinator id hold the lease', async () => {
    const leases = new MemoryLeaseManager();
    const a = setup({ leases });
    const b = setup({ leases });
    a.coordinator.startRecovery({ intervalMs: 5 });
    await vi.waitFor(async () =>
      expect(await rejection(b.coordinator.recover())).toMatchObject({ code: 'LEASE_NOT_HELD' }),
    );
    await a.coordinator.close();
    await expect(b.coordinator.recover()).resolves.toMatchObject({ failures: [] });
  });

  it('stops a round, changing nothing more, once it loses the recovery lease', async () => {
    let leaseClock = 0;
    const leases = new MemoryLeaseManager({ now: () => leaseClock });
    const crash = new Error('crash');
    const ctx = setup({
      leases,
      recoveryLeaseTtlMs: 30,
      hooks: {
        onStep: (step) => {
          if (step === 'after-decision') throw crash;
        },
      },
    });
    expect(await rejection(signup(ctx.coordinator))).toBe(crash);
    const list = ctx.log.list.bind(ctx.log);
    let stolen = false;
    // Between the two listings, the lease lapses (store clock) and another process takes it.
    ctx.log.list = async (prefix) => {
      if (!stolen) {
        stolen = true;
        leaseClock += 60_000;
        await leases.acquire('causeway:2pc:recovery:svc', { ttlMs: 60_000, holder: 'other' });
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
      return list(prefix);
    };
    expect(await rejection(ctx.coordinator.recover())).toMatchObject({ code: 'LEASE_NOT_HELD' });
    expect(ctx.users.preparedGids()).toHaveLength(1);
    expect(ctx.perms.preparedGids()).toHaveLength(1);
    expect(ctx.users.commits).toHaveLength(0);

    leaseClock += 120_000;
    const report = await ctx.coordinator.recover();
    expect(report.committed).toHaveLength(2);
    nothingPrepared(ctx.users, ctx.perms);
  });

  it('refuses bad options with CONFIG', () => {
    const log = new MemoryDecisionLog();
    const participants = { users: new MemoryParticipant() };
    for (const options of [
      { coordinatorId: "o'brien", log, participants },
      { coordinatorId: 'x'.repeat(170), log, participants },
      { coordinatorId: 'ok', log, participants: {} },
      { coordinatorId: 'ok', log, participants: { ['p'.repeat(180)]: new MemoryParticipant() } },
      { coordinatorId: 'ok', log, participants, prepareTimeoutMs: -1 },
    ]) {
      expect(() => new TwoPhaseCoordinator(options)).toThrow(
        expect.objectContaining({ code: 'CONFIG' }) as Error,
      );
    }
  });
});

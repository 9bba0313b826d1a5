import { describe, expect, it } from 'vitest';
import { nothingPrepared, setup, signup } from './setup.js';

/** A promise and the function that resolves it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

describe("TwoPhaseCoordinator phaseTwo: 'background'", () => {
  it('resolves at the commit point; the prepared branches commit after, and close() waits for them', async () => {
    const held = gate();
    const steps: string[] = [];
    const { coordinator, users, perms, log } = setup({
      phaseTwo: 'background',
      optimizations: { onePhase: false },
      hooks: {
        onStep: async (step) => {
          steps.push(step);
          if (step === 'background-phase-two') await held.opened;
        },
      },
    });
    const { gid } = await signup(coordinator);
    // Acknowledged: the decision is durable, nothing is committed yet.
    expect((await log.get(gid))?.decision).toBe('commit');
    expect(users.preparedGids()).toHaveLength(1);
    expect(perms.preparedGids()).toHaveLength(1);
    expect(users.commits).toEqual([]);
    expect(steps).toContain('background-phase-two');
    const closing = coordinator.close();
    held.open();
    await closing;
    nothingPrepared(users, perms);
    expect(users.commits).toHaveLength(1);
    expect(perms.commits).toHaveLength(1);
  });

  it('is off by default: transaction() resolves after phase two', async () => {
    const { coordinator, users, perms } = setup({ optimizations: { onePhase: false } });
    await signup(coordinator);
    nothingPrepared(users, perms);
    expect(users.commits).toHaveLength(1);
  });

  it('keeps its maxConcurrentTransactions slot until phase two is done', async () => {
    const held = gate();
    const { coordinator, users } = setup({
      phaseTwo: 'background',
      maxConcurrentTransactions: 1,
      optimizations: { onePhase: false },
      hooks: {
        onStep: async (step) => {
          if (step === 'background-phase-two') await held.opened;
        },
      },
    });
    await signup(coordinator, 1);
    let second = false;
    const next = signup(coordinator, 2).then(() => {
      second = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(second).toBe(false);
    held.open();
    await next;
    await coordinator.close();
    expect(users.commits).toHaveLength(2);
  });

  it('reports a failed background phase two to onRecoveryError, never as a rejection', async () => {
    const errors: unknown[] = [];
    const crash = new Error('stopped in phase two');
    const { coordinator, users, perms, log } = setup({
      phaseTwo: 'background',
      optimizations: { onePhase: false },
      onRecoveryError: (error) => errors.push(error),
      hooks: {
        onStep: (step) => {
          if (step === 'background-phase-two') throw crash;
        },
      },
    });
    const { gid } = await signup(coordinator);
    await coordinator.close();
    expect(errors).toEqual([crash]);
    // Left prepared for recovery, which commits them: the decision is durable.
    expect((await log.get(gid))?.decision).toBe('commit');
    expect(users.preparedGids()).toHaveLength(1);
    expect(perms.preparedGids()).toHaveLength(1);
    const recovery = setup({ log, participants: { users, perms } }).coordinator;
    expect((await recovery.recover()).committed).toHaveLength(2);
    // Applied everywhere, so the decision is forgotten.
    expect(await log.get(gid)).toBeUndefined();
    await recovery.close();
    nothingPrepared(users, perms);
    expect(users.commits).toHaveLength(1);
  });

  it('refuses a bad phaseTwo with CONFIG', () => {
    for (const phaseTwo of ['later', true, 1]) {
      expect(() => setup({ phaseTwo } as never), String(phaseTwo)).toThrow(
        expect.objectContaining({ code: 'CONFIG' }),
      );
    }
  });
});

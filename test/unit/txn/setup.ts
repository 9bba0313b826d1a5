import { expect } from 'vitest';
import { MemoryDecisionLog } from '../../../adapters/memory/decision-log.js';
import { MemoryParticipant } from '../../../adapters/memory/participant.js';
import {
  TwoPhaseCoordinator,
  type TwoPhaseCoordinatorOptions,
} from '../../../src/txn/coordinator.js';
import type { HeuristicEvent } from '../../../src/txn/recovery.js';

// The coordinator unit tests' fixture: two memory participants and a memory log on one clock.

export function setup(options: Partial<TwoPhaseCoordinatorOptions> = {}) {
  let clock = 1_000_000;
  const now = () => clock;
  const users = new MemoryParticipant({ name: 'users', now });
  const perms = new MemoryParticipant({ name: 'perms', now });
  const log = new MemoryDecisionLog({ now });
  const heuristics: HeuristicEvent[] = [];
  const coordinator = new TwoPhaseCoordinator({
    coordinatorId: 'svc',
    log,
    participants: { users, perms },
    prepareTimeoutMs: 1_000,
    commitWaitMs: 200,
    retryInitialDelayMs: 1,
    retryMaxDelayMs: 5,
    onHeuristic: (event) => heuristics.push(event),
    ...options,
  });
  return {
    users,
    perms,
    log,
    coordinator,
    heuristics,
    advance(ms: number) {
      clock += ms;
    },
  };
}

/** The signup example: one write in each participant. */
export async function signup(coordinator: TwoPhaseCoordinator, id = 1) {
  return coordinator.transaction(async (tx) => {
    await tx.participant('users').query('INSERT INTO users VALUES ($1)', [id]);
    await tx.participant('perms').query('INSERT INTO permissions VALUES ($1)', [id]);
    return id;
  });
}

export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

export function nothingPrepared(...participants: MemoryParticipant[]) {
  for (const participant of participants) expect(participant.preparedGids()).toEqual([]);
}

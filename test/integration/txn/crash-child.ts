/**
 * Child process for the crash-point tests: runs one signup transaction (a row in each of two
 * databases) and SIGKILLs itself at the step named in its argument, the way a crashed
 * coordinator stops: no cleanup, no rollback, connections cut by the kernel.
 */
import pg from 'pg';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import {
  TwoPhaseCoordinator,
  type TwoPhaseOptimizations,
  type TwoPhaseStep,
} from '../../../src/txn/coordinator.js';

/**
 * What the transaction does: a row in each database; a row in `users` only; or a read in
 * `users` and a row in `perms`.
 */
export type CrashShape = 'both' | 'users-only' | 'read-users';

export interface CrashChildArgs {
  usersUrl: string;
  permsUrl: string;
  table: string;
  logTable: string;
  coordinatorId: string;
  id: number;
  step: TwoPhaseStep;
  /** For the per-participant steps: which participant's step to die at. */
  participant?: string;
  shape: CrashShape;
  optimizations: TwoPhaseOptimizations;
  phaseTwo?: 'await' | 'background';
}

const args = JSON.parse(process.argv[2] ?? '{}') as CrashChildArgs;
const users = new pg.Pool({ connectionString: args.usersUrl, max: 2 });
const perms = new pg.Pool({ connectionString: args.permsUrl, max: 2 });
const coordinator = new TwoPhaseCoordinator({
  coordinatorId: args.coordinatorId,
  log: new PgDecisionLog({ pool: users, table: args.logTable }),
  participants: {
    users: new PgParticipant({ pool: users }),
    perms: new PgParticipant({ pool: perms }),
  },
  optimizations: args.optimizations,
  phaseTwo: args.phaseTwo ?? 'await',
  hooks: {
    onStep: async (step, info) => {
      if (step !== args.step) return;
      if (args.participant !== undefined && info.participant !== args.participant) return;
      // Dies only once the caller was told the transaction committed.
      if (step === 'background-phase-two') await acknowledged;
      process.stdout.write(`${info.gid}\n`);
      process.kill(process.pid, 'SIGKILL');
    },
  },
});
const acknowledged = coordinator.transaction(async (tx) => {
  const insert = [`INSERT INTO ${args.table} (id) VALUES ($1)`, [args.id]] as const;
  if (args.shape === 'read-users') {
    await tx.participant('users').query(`SELECT count(*) FROM ${args.table}`);
  } else {
    await tx.participant('users').query(...insert);
  }
  if (args.shape !== 'users-only') await tx.participant('perms').query(...insert);
});
await acknowledged;
// Waits for phase two in the background, where the step may still come.
await coordinator.close();
// Reaching here means the step never came: the parent test fails on the exit code.
process.exit(0);

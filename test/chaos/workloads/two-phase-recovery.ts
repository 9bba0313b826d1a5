import type pg from 'pg';
import { PgDecisionLog } from '../../../adapters/pg/decision-log.js';
import { PgLeaseManager } from '../../../adapters/pg/fencing.js';
import { PgParticipant } from '../../../adapters/pg/participant.js';
import { ErrorCode, isCausewayError } from '../../../src/errors.js';
import { TwoPhaseCoordinator } from '../../../src/txn/coordinator.js';
import { sleep } from '../../../src/util/timers.js';
import type { TwoPhaseStats } from './two-phase-check.js';

export interface FinalRecoveryInput {
  readonly names: {
    readonly logTable: string;
    readonly leaseTable: string;
    readonly coordinatorId: string;
  };
  readonly users: pg.Pool;
  readonly perms: pg.Pool;
  readonly recoveryLeaseTtlMs: number;
  readonly prepareTimeoutMs: number;
  /** Longest it runs before it reports what is left. */
  readonly deadlineMs: number;
  /** Gets `finalRecovery`. */
  readonly stats: TwoPhaseStats;
  /** This coordinator's prepared gids on a server. */
  readonly preparedOn: (pool: pg.Pool) => Promise<string[]>;
}

/**
 * The two-phase workload's final recovery: a coordinator in this process runs rounds until
 * nothing of the workload's coordinator is prepared and a round is clean. Resolves to the
 * problems seen (heuristic outcomes, or what was left at the deadline).
 */
export async function recoverToCompletion(input: FinalRecoveryInput): Promise<string[]> {
  const { names, users, perms, stats } = input;
  const heuristics: string[] = [];
  const coordinator = new TwoPhaseCoordinator({
    coordinatorId: names.coordinatorId,
    log: new PgDecisionLog({ pool: users, table: names.logTable }),
    participants: {
      users: new PgParticipant({ pool: users }),
      perms: new PgParticipant({ pool: perms }),
    },
    leases: new PgLeaseManager({ pool: users, table: names.leaseTable }),
    recoveryLeaseTtlMs: input.recoveryLeaseTtlMs,
    prepareTimeoutMs: input.prepareTimeoutMs,
    onHeuristic: (event) =>
      heuristics.push(`heuristic outcome in final recovery: ${event.gid} is ${event.observed}`),
  });
  const deadline = performance.now() + input.deadlineMs;
  let lastProblem = 'no round ran';
  try {
    while (performance.now() < deadline) {
      try {
        const report = await coordinator.recover();
        const final = stats.finalRecovery;
        final.rounds++;
        final.committed += report.committed.length;
        final.rolledBack += report.rolledBack.length;
        final.presumedAborted += report.presumedAborted.length;
        final.forgotten += report.forgotten.length;
        const left = [...(await input.preparedOn(users)), ...(await input.preparedOn(perms))];
        if (report.failures.length === 0 && left.length === 0) return heuristics;
        lastProblem = `${left.length} branch(es) still prepared, ${report.failures.length} failure(s)`;
      } catch (error) {
        // The lease of a killed coordinator lapses after its ttl; a server may be restarting.
        lastProblem = isCausewayError(error, ErrorCode.LEASE_NOT_HELD)
          ? 'recovery lease held elsewhere'
          : String(error);
      }
      await sleep(200);
    }
    return [...heuristics, `recovery did not complete: ${lastProblem}`];
  } finally {
    await coordinator.close();
  }
}

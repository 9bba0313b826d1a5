/**
 * The contract between the fault-injection driver (test/chaos/driver.ts) and the workloads it
 * runs. A run: start a cluster, start every workload, inject faults on a seeded schedule for the
 * run's duration, heal everything (restart what is stopped, lag back to 0), stop the workloads,
 * then ask each to verify its invariants and print one summary table.
 */
import type { Cluster } from '../harness/cluster.js';
import type { Rng } from './rng.js';

export interface ChaosContext {
  /** The run's own servers: faults stop, restart and reconfigure them. */
  readonly cluster: Cluster;
  /** This workload's or fault's own generator, forked from the run's seed. */
  readonly rng: Rng;
  /** Appends a line to the run's event log (kept with the history when the run fails). */
  log(event: string): void;
  /** Directory for files a failed run keeps (histories, logs). */
  readonly outDir: string;
}

/** A fault the driver can schedule. `inject` returns once the fault is in place. */
export interface Fault {
  /** Short name used in the summary table, e.g. 'replica-lag', 'coordinator-kill'. */
  readonly kind: string;
  /** Injects the fault; the driver heals what it left broken at the end of the run. */
  inject(ctx: ChaosContext): Promise<void>;
}

export interface WorkloadReport {
  readonly workload: string;
  /** Operations issued (attempted) by clients. */
  readonly operations: number;
  /** Session-guarantee violations found by the history checker, or other broken invariants. */
  readonly violations: number;
  /** Acknowledged writes that are missing afterwards (or 2PC transactions not all-or-nothing). */
  readonly lostWrites: number;
  /** Writes with a stale fencing token that the storage rejected. */
  readonly staleWritesRejected: number;
  /** Writes with a stale fencing token that the storage accepted (must be 0). */
  readonly staleWritesAccepted: number;
  /** One line per broken invariant, naming the proof (ids, gids, keys). Empty when all held. */
  readonly failures: readonly string[];
  /**
   * Things the run saw that break no invariant but a reader should know: a documented limit
   * that was hit (e.g. writes lost with a Redis restarted without persistence), counts of
   * recovered in-doubt transactions. Printed with the summary; never a failure.
   */
  readonly notes?: readonly string[];
  /** Written to `outDir` as JSON when the run fails. */
  readonly history?: unknown;
}

export interface Workload {
  readonly name: string;
  /** Faults that belong to this workload (e.g. SIGKILL of its coordinator child). */
  readonly faults?: readonly Fault[];
  /** Starts issuing operations in the background and resolves once they run. Never throws for a fault: client errors are recorded. */
  start(ctx: ChaosContext): Promise<void>;
  /** Stops issuing operations and waits for those in flight. */
  stop(): Promise<void>;
  /** After the cluster is healed: checks the invariants and reports. */
  verify(): Promise<WorkloadReport>;
}

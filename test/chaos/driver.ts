/**
 * The fault-injection driver: starts its own cluster (its own servers: it kills them), starts the
 * workloads, injects faults on a schedule drawn from the seed, heals the cluster, stops the
 * workloads, verifies them and prints one summary table. The seed is printed first; the same
 * seed replays the same schedule (fault kinds, their order and times, and every choice a fault
 * or a workload draws from its generator), though not the same interleaving with the servers.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../../src/util/timers.js';
import { type Cluster, startCluster } from '../harness/cluster.js';
import { clusterFaults, healCluster } from './faults.js';
import { createRng, type Rng } from './rng.js';
import type { ChaosContext, Fault, Workload, WorkloadReport } from './types.js';

export interface ChaosOptions {
  /** Seeds every generator of the run (32-bit unsigned). */
  seed: number;
  /** How long faults are injected, in milliseconds (healing and verifying come after). */
  durationMs: number;
  workloads: readonly Workload[];
  /** Where a failed run keeps its histories and event log (a subdirectory per run). */
  outDir: string;
  /** Cluster faults to schedule. Default `clusterFaults()`; each workload adds its own. */
  faults?: readonly Fault[];
  /**
   * Mean pause between two injections. Default: the run's first 60 % divided by the number of
   * fault kinds, at most 4 s, so that every kind comes up at least once in a short run.
   */
  meanGapMs?: number;
  /**
   * Run Redis with an append-only file (`appendfsync always`), as the README asks of Redis that
   * keeps session or fencing state. Default true. Without it a restart loses every key.
   */
  redisAppendOnly?: boolean;
  /** Where the seed, progress and summary go. Default `console.log`. */
  print?: (line: string) => void;
  /** Print every event as it happens (else only the seed and the summary). Default false. */
  verbose?: boolean;
}

export interface ChaosResult {
  readonly seed: number;
  /** No violation, lost write or stale write accepted, and every fault and heal went through. */
  readonly ok: boolean;
  readonly reports: readonly WorkloadReport[];
  /** Faults injected (completed) by kind, every scheduled kind present. */
  readonly faults: Readonly<Record<string, number>>;
  /** Faults or heals that failed to complete (the run is then not ok). */
  readonly faultErrors: readonly string[];
  /** The printed summary table. */
  readonly summary: string;
  /** Directory with the histories and the event log, when the run failed. */
  readonly keptIn: string | undefined;
}

/** A random 32-bit seed for a run that was given none. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const { seed, durationMs, workloads, outDir } = options;
  const print = options.print ?? ((line: string) => console.log(line));
  print(`chaos: seed ${seed} (replay: npm run chaos -- --seed ${seed})`);

  const root = createRng(seed);
  const scheduleRng = root.fork();
  const workloadRngs = workloads.map(() => root.fork());
  const faults = [
    ...(options.faults ?? clusterFaults()),
    ...workloads.flatMap((w) => w.faults ?? []),
  ];
  const byKind = new Map<string, Fault>();
  for (const fault of faults) {
    if (byKind.has(fault.kind)) throw new Error(`two faults of kind ${fault.kind}`);
    byKind.set(fault.kind, fault);
  }
  const kinds = [...byKind.keys()];
  const faultRngs = new Map(kinds.map((kind) => [kind, root.fork()]));

  const started = performance.now();
  const events: string[] = [];
  const log = (source: string, event: string) => {
    // `t` is performance.now(), the clock of the workloads' histories, to line events up with them.
    const now = performance.now();
    const line = `[+${((now - started) / 1000).toFixed(3)}s t=${Math.round(now)}] ${source}: ${event}`;
    events.push(line);
    if (options.verbose) print(line);
  };
  const runDir = join(outDir, `chaos-${seed}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await mkdir(runDir, { recursive: true });
  const context = (source: string, cluster: Cluster, rng: Rng): ChaosContext => ({
    cluster,
    rng,
    outDir: runDir,
    log: (event) => log(source, event),
  });

  const injected = Object.fromEntries(kinds.map((kind) => [kind, 0])) as Record<string, number>;
  const faultErrors: string[] = [];
  const reports: WorkloadReport[] = [];
  let cluster: Cluster | undefined;
  const startedWorkloads: Workload[] = [];
  try {
    log('driver', 'starting the cluster');
    // No apply delay to start with: the lag fault brings it and takes it away.
    cluster = await startCluster({
      replicaDelayMs: 0,
      redis: { appendOnly: options.redisAppendOnly ?? true },
    });
    const running = cluster;
    for (const [i, workload] of workloads.entries()) {
      await workload.start(context(workload.name, running, workloadRngs[i]!));
      startedWorkloads.push(workload);
    }
    log('driver', `workloads running: ${workloads.map((w) => w.name).join(', ')}`);

    const faultStart = performance.now();
    const meanGap =
      options.meanGapMs ??
      Math.min(4000, Math.round((durationMs * 0.6) / Math.max(1, kinds.length)));
    const inFlight = new Map<string, Promise<void>>();
    const bag: string[] = [];
    let due = 0;
    for (;;) {
      if (bag.length === 0) bag.push(...shuffled(kinds, scheduleRng));
      const kind = bag.shift();
      due += scheduleRng.int(Math.round(meanGap / 2), Math.round(meanGap * 1.5));
      if (kind === undefined || due >= durationMs) break;
      await sleep(due - (performance.now() - faultStart));
      // One injection of a kind at a time: a second waits for the first.
      await inFlight.get(kind);
      if (performance.now() - faultStart >= durationMs) break;
      const fault = byKind.get(kind)!;
      log('driver', `inject ${kind}`);
      inFlight.set(
        kind,
        fault.inject(context(kind, running, faultRngs.get(kind)!)).then(
          () => {
            injected[kind] = (injected[kind] ?? 0) + 1;
          },
          (error: unknown) => {
            faultErrors.push(`${kind}: ${describe(error)}`);
            log(kind, `failed: ${describe(error)}`);
          },
        ),
      );
    }
    await sleep(durationMs - (performance.now() - faultStart));
    log('driver', 'fault window over; waiting for faults in flight');
    await Promise.all(inFlight.values());
    try {
      await healCluster(running, (event) => log('driver', event));
    } catch (error) {
      faultErrors.push(`heal: ${describe(error)}`);
      log('driver', `heal failed: ${describe(error)}`);
    }
  } catch (error) {
    faultErrors.push(`run: ${describe(error)}`);
    log('driver', `run failed: ${describe(error)}`);
  } finally {
    for (const workload of startedWorkloads) {
      await workload.stop().catch((error: unknown) => {
        faultErrors.push(`${workload.name} stop: ${describe(error)}`);
      });
    }
    log('driver', 'workloads stopped; verifying');
    for (const workload of startedWorkloads) {
      reports.push(await verified(workload));
    }
    await cluster?.stop();
  }

  const ok =
    faultErrors.length === 0 &&
    reports.length === workloads.length &&
    reports.every(
      (r) =>
        r.violations === 0 &&
        r.lostWrites === 0 &&
        r.staleWritesAccepted === 0 &&
        r.failures.length === 0,
    );
  const summary = summarize(seed, durationMs, reports, injected, faultErrors, ok);
  print(summary);
  let keptIn: string | undefined;
  if (ok) {
    await rm(runDir, { recursive: true, force: true });
  } else {
    keptIn = runDir;
    await writeFile(join(runDir, 'events.log'), `${events.join('\n')}\n`);
    await writeFile(join(runDir, 'summary.txt'), `${summary}\n`);
    for (const report of reports) {
      await writeFile(
        join(runDir, `${report.workload}.json`),
        `${JSON.stringify({ ...report, seed }, null, 1)}\n`,
      );
    }
    print(`chaos: FAILED (seed ${seed}); history and event log kept in ${runDir}`);
  }
  return { seed, ok, reports, faults: injected, faultErrors, summary, keptIn };
}

/** A workload's report, or a failing one naming the error if `verify()` threw. */
async function verified(workload: Workload): Promise<WorkloadReport> {
  try {
    return await workload.verify();
  } catch (error) {
    return {
      workload: workload.name,
      operations: 0,
      violations: 0,
      lostWrites: 0,
      staleWritesRejected: 0,
      staleWritesAccepted: 0,
      failures: [`verify() threw: ${describe(error)}`],
    };
  }
}

function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

const COLUMNS = [
  'workload',
  'operations',
  'violations',
  'lost writes',
  'stale writes rejected',
  'stale writes accepted',
] as const;

/** The summary: a Markdown table per workload, faults by kind, failures and notes. */
export function summarize(
  seed: number,
  durationMs: number,
  reports: readonly WorkloadReport[],
  injected: Readonly<Record<string, number>>,
  faultErrors: readonly string[],
  ok: boolean,
): string {
  const rows = reports.map((r) => [
    r.workload,
    String(r.operations),
    String(r.violations),
    String(r.lostWrites),
    String(r.staleWritesRejected),
    String(r.staleWritesAccepted),
  ]);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  const lines = [
    `chaos run: seed ${seed}, ${Math.round(durationMs / 1000)} s of faults: ${ok ? 'PASSED' : 'FAILED'}`,
    '',
    line(COLUMNS),
    `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...rows.map(line),
    '',
    `faults injected: ${Object.entries(injected)
      .map(([kind, count]) => `${kind} ${count}`)
      .join(', ')}`,
  ];
  for (const error of faultErrors) lines.push(`fault error: ${error}`);
  for (const report of reports) {
    for (const note of report.notes ?? []) lines.push(`${report.workload}: ${note}`);
    for (const failure of report.failures) lines.push(`${report.workload} FAILURE: ${failure}`);
  }
  return lines.join('\n');
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

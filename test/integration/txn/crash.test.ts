import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TwoPhaseOptimizations, TwoPhaseStep } from '../../../src/txn/coordinator.js';
import { testEnv } from '../../harness/env.js';
import { runTsx } from '../../support/child-process.js';
import type { CrashChildArgs, CrashShape } from './crash-child.js';
import { namespace, type Pair, pair } from './helpers.js';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));

/** Runs the child to its crash; resolves to its signal and the gid it printed. */
async function runChild(args: CrashChildArgs): Promise<{ signal: string; gid: string }> {
  const { code, signal, stdout, stderr } = await runTsx(CHILD, [JSON.stringify(args)]);
  if (signal === null) throw new Error(`child exited with ${code}: ${stderr}`);
  return { signal, gid: stdout.trim() };
}

interface CrashCase {
  step: TwoPhaseStep;
  participant?: string;
  /** Whether the transaction's writes must be there after recovery. */
  committed: boolean;
  /** Prepared branches the crash must have left for recovery, where that is known. */
  prepared?: number;
  /** Recoverers run at once, without a lease (other processes restarting). Default: 1. */
  recoverers?: number;
}

const NONE: TwoPhaseOptimizations = {
  onePhase: false,
  readOnly: false,
  commitWithLog: false,
  batchDecisions: false,
};

/**
 * Every path the coordinator can take, each with every step it passes. The log lives in the
 * `users` database (on the same pool as the `users` participant), so with every optimization on
 * a transaction writing both databases commits `users` together with the decision.
 */
const PATHS: {
  path: string;
  shape: CrashShape;
  optimizations: TwoPhaseOptimizations;
  phaseTwo?: 'background';
  cases: CrashCase[];
}[] = [
  {
    path: 'classic 2PC, no optimization',
    shape: 'both',
    optimizations: NONE,
    cases: [
      { step: 'before-prepare', committed: false },
      { step: 'after-prepare', participant: 'users', committed: false },
      { step: 'after-prepare', participant: 'perms', committed: false },
      { step: 'after-decision', committed: true },
      { step: 'after-commit', participant: 'users', committed: true },
      { step: 'after-commit', participant: 'perms', committed: true },
    ],
  },
  {
    path: 'decisions batched',
    shape: 'both',
    optimizations: { ...NONE, batchDecisions: true },
    cases: [
      { step: 'after-prepare', participant: 'perms', committed: false },
      { step: 'after-decision', committed: true },
      { step: 'after-commit', participant: 'users', committed: true },
    ],
  },
  {
    path: 'decision committed with the log participant',
    shape: 'both',
    optimizations: {},
    cases: [
      { step: 'before-prepare', committed: false },
      { step: 'after-prepare', participant: 'perms', committed: false },
      { step: 'before-local-commit', participant: 'users', committed: false },
      { step: 'after-decision', committed: true },
      { step: 'after-commit', participant: 'perms', committed: true },
    ],
  },
  {
    path: 'decision committed with the log participant, phase two in the background',
    shape: 'both',
    optimizations: {},
    phaseTwo: 'background',
    cases: [
      { step: 'after-prepare', participant: 'perms', committed: false },
      { step: 'before-local-commit', participant: 'users', committed: false },
      { step: 'after-decision', committed: true },
      // SIGKILL after transaction() resolved, before phase two committed anything.
      { step: 'background-phase-two', committed: true, prepared: 1, recoverers: 2 },
      { step: 'after-commit', participant: 'perms', committed: true },
    ],
  },
  {
    path: 'classic 2PC, phase two in the background',
    shape: 'both',
    optimizations: NONE,
    phaseTwo: 'background',
    cases: [
      { step: 'after-prepare', participant: 'users', committed: false },
      { step: 'after-decision', committed: true },
      { step: 'background-phase-two', committed: true, prepared: 2, recoverers: 2 },
      { step: 'after-commit', participant: 'users', committed: true },
    ],
  },
  {
    path: 'one-phase commit',
    shape: 'users-only',
    optimizations: {},
    cases: [
      { step: 'before-prepare', committed: false },
      { step: 'before-local-commit', participant: 'users', committed: false },
      { step: 'after-local-commit', participant: 'users', committed: true },
    ],
  },
  {
    path: 'read-only participant, the other prepared',
    shape: 'read-users',
    optimizations: { onePhase: false },
    cases: [
      { step: 'after-read-only', participant: 'users', committed: false },
      { step: 'after-prepare', participant: 'perms', committed: false },
      { step: 'after-decision', committed: true },
      { step: 'after-commit', participant: 'perms', committed: true },
    ],
  },
  {
    path: 'read-only participant, the other committed in one phase',
    shape: 'read-users',
    optimizations: {},
    cases: [
      { step: 'after-read-only', participant: 'users', committed: false },
      { step: 'after-local-commit', participant: 'perms', committed: true },
    ],
  },
];

describe('2PC crash points (coordinator SIGKILLed, then recovery)', () => {
  let db: Pair;

  beforeAll(async () => {
    const env = testEnv();
    db = await pair(env.primaryUrl, env.primary2Url, namespace('crash'));
    // The child creates the log table on first use; create it here so every case has it.
    await db.coordinator().recover();
  });

  afterAll(async () => {
    expect(await db.prepared()).toEqual([]);
    await db.drop();
  });

  let nextId = 0;
  for (const { path, shape, optimizations, phaseTwo, cases } of PATHS) {
    describe(path, () => {
      for (const crash of cases) {
        it(`${crash.step} ${crash.participant ?? ''}: all or nothing`, async () => {
          const id = ++nextId;
          const { signal, gid } = await runChild({
            usersUrl: db.users.options.connectionString!,
            permsUrl: db.perms.options.connectionString!,
            table: db.table,
            logTable: db.logTable,
            coordinatorId: db.coordinatorId,
            id,
            step: crash.step,
            ...(crash.participant === undefined ? {} : { participant: crash.participant }),
            shape,
            optimizations,
            ...(phaseTwo === undefined ? {} : { phaseTwo }),
          });
          expect(signal).toBe('SIGKILL');
          expect(gid).toMatch(/^cw:/);
          if (crash.prepared !== undefined)
            expect(await db.prepared()).toHaveLength(crash.prepared);

          // A new coordinator process would do this at start-up; the prepare timeout is short
          // because the crashed coordinator is certainly gone.
          const recoverers = Array.from({ length: crash.recoverers ?? 1 }, () =>
            db.coordinator({ prepareTimeoutMs: 1 }),
          );
          const reports = await Promise.all(recoverers.map((r) => r.recover()));
          for (const report of reports) {
            // Racing recoverers: PostgreSQL refuses a second COMMIT PREPARED of a branch the
            // other is finishing ("is busy", 55000), left to the next round.
            const failures =
              recoverers.length === 1
                ? report.failures
                : report.failures.filter(
                    (failure) => (failure.error as { code?: string }).code !== '55000',
                  );
            expect(failures).toEqual([]);
            expect(report.heuristics).toEqual([]);
          }
          if (recoverers.length > 1) {
            const next = await recoverers[0]!.recover();
            expect(next.failures).toEqual([]);
            expect(next.heuristics).toEqual([]);
          }
          for (const r of recoverers) await r.close();

          const rows = await db.rows();
          const written = (ids: number[]) => ids.includes(id);
          if (shape !== 'read-users') expect(written(rows.users)).toBe(crash.committed);
          if (shape !== 'users-only') expect(written(rows.perms)).toBe(crash.committed);
          expect(await db.prepared()).toEqual([]);
          const decision = (await db.decisions()).find((d) => d.gid === gid)?.decision;
          // Committed: the commit decision was forgotten once applied (or never written, in
          // one phase). Aborted: no commit logged.
          if (crash.committed) expect(decision).toBeUndefined();
          else expect(decision === undefined || decision === 'abort').toBe(true);
        });
      }
    });
  }
});

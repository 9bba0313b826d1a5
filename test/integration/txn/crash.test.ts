import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TwoPhaseStep } from '../../../src/txn/coordinator.js';
import { testEnv } from '../../harness/env.js';
import { runTsx } from '../../support/child-process.js';
import type { CrashChildArgs } from './crash-child.js';
import { namespace, type Pair, pair } from './helpers.js';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));

/** Runs the child to its crash; resolves to its signal and the gid it printed. */
async function runChild(args: CrashChildArgs): Promise<{ signal: string; gid: string }> {
  const { code, signal, stdout, stderr } = await runTsx(CHILD, [JSON.stringify(args)]);
  if (signal === null) throw new Error(`child exited with ${code}: ${stderr}`);
  return { signal, gid: stdout.trim() };
}

const CASES: { step: TwoPhaseStep; participant?: string; committed: boolean }[] = [
  { step: 'before-prepare', committed: false },
  { step: 'after-prepare', participant: 'users', committed: false },
  { step: 'after-prepare', participant: 'perms', committed: false },
  { step: 'after-decision', committed: true },
  { step: 'after-commit', participant: 'users', committed: true },
  { step: 'after-commit', participant: 'perms', committed: true },
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

  CASES.forEach((crash, index) => {
    it(`${crash.step} ${crash.participant ?? ''}: all or nothing`, async () => {
      const id = index + 1;
      const { signal, gid } = await runChild({
        usersUrl: db.users.options.connectionString!,
        permsUrl: db.perms.options.connectionString!,
        table: db.table,
        logTable: db.logTable,
        coordinatorId: db.coordinatorId,
        id,
        step: crash.step,
        ...(crash.participant === undefined ? {} : { participant: crash.participant }),
      });
      expect(signal).toBe('SIGKILL');
      expect(gid).toMatch(/^cw:/);

      // A new coordinator process would do this at start-up; the prepare timeout is short
      // because the crashed coordinator is certainly gone.
      const recovery = db.coordinator({ prepareTimeoutMs: 1 });
      const report = await recovery.recover();
      await recovery.close();
      expect(report.failures).toEqual([]);
      expect(report.heuristics).toEqual([]);

      const rows = await db.rows();
      const present = (ids: number[]) => ids.includes(id);
      expect(present(rows.users)).toBe(crash.committed);
      expect(present(rows.perms)).toBe(crash.committed);
      expect(await db.prepared()).toEqual([]);
      const decision = (await db.decisions()).find((d) => d.gid === gid)?.decision;
      // Committed: the commit decision was forgotten once applied. Aborted: no commit logged.
      if (crash.committed) expect(decision).toBeUndefined();
      else expect(decision === undefined || decision === 'abort').toBe(true);
    });
  });
});

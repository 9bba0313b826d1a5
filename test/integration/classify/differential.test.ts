import { expect, it } from 'vitest';
import { testEnv } from '../../harness/env.js';
import { runDifferential } from '../../support/differential.js';
import { sqlCorpus } from '../../support/sql-corpus.js';

// Issue 11: the classifier's verdicts against what PostgreSQL does with each statement of a
// 1,000+ statement corpus on the real hot standby (see test/support/differential.ts).
it('routes no statement that writes, calls a volatile function or changes the connection, and loses under 2 % of the offload', async () => {
  const env = testEnv();
  const corpus = sqlCorpus();
  expect(corpus.length).toBeGreaterThanOrEqual(1000);
  const report = await runDifferential({
    primaryUrl: env.primaryUrl,
    replicaUrl: env.replicaUrl,
    corpus,
  });
  const reasons = new Map<string, number>();
  for (const { detail } of report.lostOffload) reasons.set(detail, (reasons.get(detail) ?? 0) + 1);
  console.log(
    `differential: ${report.statements} statements, ${report.readOnly} read-only, ` +
      `${report.routed} routed, ${report.unsound.length} unsound, ` +
      `${report.lostOffload.length} read-only ones sent to the primary ` +
      `(${((100 * report.lostOffload.length) / report.readOnly).toFixed(2)} %): ` +
      JSON.stringify(Object.fromEntries(reasons)),
  );
  expect(report.unsound).toEqual([]);
  // The corpus is mostly read-only statements, so the measure means something.
  expect(report.readOnly).toBeGreaterThan(report.statements / 2);
  expect(report.lostOffload.length / report.readOnly).toBeLessThan(0.02);
}, 120_000);

it('catches a classifier told to trust volatile functions', async () => {
  const env = testEnv();
  const report = await runDifferential({
    primaryUrl: env.primaryUrl,
    replicaUrl: env.replicaUrl,
    corpus: sqlCorpus(300),
    classifier: { readOnlyFunctions: ['pg_try_advisory_lock', 'set_config', 'nextval', 'random'] },
  });
  const details = report.unsound.map((finding) => finding.detail).join('\n');
  expect(details).toMatch(/25006/); // nextval on the standby
  expect(details).toMatch(/calls [a-z_, ]*random/); // in the plan, though the standby ran it
  expect(details).toMatch(/"advisory_locks":[1-9]/); // left held on the connection
}, 120_000);

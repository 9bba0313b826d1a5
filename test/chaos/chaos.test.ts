import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { randomSeed, runChaos } from './driver.js';
import { clusterFaults } from './faults.js';
import { chaosWorkloads } from './suite.js';

// A random seed each run (printed first by the driver), or CAUSEWAY_CHAOS_SEED to replay one.
const seedVariable = process.env['CAUSEWAY_CHAOS_SEED'];
const SEED = seedVariable === undefined ? randomSeed() : Number(seedVariable);
const DURATION_MS = 60_000;

it('keeps every invariant through a minute of faults on a real cluster', async () => {
  const workloads = chaosWorkloads('short');
  const result = await runChaos({
    seed: SEED,
    durationMs: DURATION_MS,
    workloads,
    outDir: join(tmpdir(), 'causeway-chaos'),
  });
  // Every message names the seed and, for a failed run, where its history was kept.
  const context = `seed ${result.seed}${result.keptIn ? `, history kept in ${result.keptIn}` : ''}\n${result.summary}`;
  expect(result.faultErrors, context).toEqual([]);
  expect(
    result.reports.map((r) => r.workload),
    context,
  ).toEqual(workloads.map((w) => w.name));
  for (const report of result.reports) {
    expect(report.failures, context).toEqual([]);
    expect(report.violations, context).toBe(0);
    expect(report.lostWrites, context).toBe(0);
    expect(report.staleWritesAccepted, context).toBe(0);
    expect(report.operations, context).toBeGreaterThan(0);
  }
  const kinds = [...clusterFaults(), ...workloads.flatMap((w) => w.faults ?? [])].map(
    (f) => f.kind,
  );
  for (const kind of kinds)
    expect(result.faults[kind], `${kind} injected; ${context}`).toBeGreaterThan(0);
  expect(result.ok, context).toBe(true);
}, 300_000);

import { join } from 'node:path';
import { expect } from 'vitest';
import { ANOMALIES } from '../../../examples/editorial/walkthrough.js';
import { type ChildResult, runTsx } from '../../support/child-process.js';

export const ROOT = join(import.meta.dirname, '..', '..', '..');
export const MAIN = join(ROOT, 'examples', 'editorial', 'main.ts');

/** Runs the demo with `args` (`env` added to this process's) until it exits by itself. */
export function runDemo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildResult> {
  return runTsx(MAIN, args, { cwd: ROOT, env });
}

/** `n of m` for Causeway off and on, from the report's summary row labelled `label`. */
export function summaryRow(stdout: string, label: string) {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`^ +${escaped} +(\\d+) of (\\d+) +(\\d+) of (\\d+)`, 'm').exec(stdout);
  if (match === null) throw new Error(`no summary row "${label}" in:\n${stdout}`);
  const [off, offOf, on, onOf] = match.slice(1).map(Number) as [number, number, number, number];
  return { off, offOf, on, onOf };
}

/**
 * The walk-through's promise: every anomaly shows up without Causeway and none with it, on the
 * same number of requests, and most reads with Causeway still come from replicas.
 */
export function expectCausewayHeld(stdout: string): void {
  for (const [, label] of ANOMALIES) {
    const row = summaryRow(stdout, label);
    expect(row.off, `${label}: without Causeway`).toBeGreaterThan(0);
    expect(row.on, `${label}: with Causeway`).toBe(0);
    expect(row.onOf, label).toBe(row.offOf);
  }
  const replicas = summaryRow(stdout, 'reads served by replicas');
  expect(replicas.onOf).toBeGreaterThan(0);
  expect(replicas.on * 2).toBeGreaterThan(replicas.onOf);
}

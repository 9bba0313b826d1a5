import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ANOMALIES } from '../../../examples/editorial/walkthrough.js';

export const ROOT = join(import.meta.dirname, '..', '..', '..');
export const MAIN = join(ROOT, 'examples', 'editorial', 'main.ts');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo with `args` and resolves when it exits by itself. */
export function runDemo(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
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

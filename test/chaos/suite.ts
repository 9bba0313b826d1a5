/**
 * The workloads of a chaos run, shared by `npm run chaos` and the short run in `npm test`.
 * `'short'` keeps the CPU moderate next to the rest of the suite on two cores; `'long'` is for
 * runs of several minutes on their own.
 */
import type { Workload } from './types.js';
import { sessionsWorkload } from './workloads/sessions.js';

export function chaosWorkloads(scale: 'short' | 'long'): Workload[] {
  return [sessionsWorkload({ users: scale === 'short' ? 8 : 12 })];
}

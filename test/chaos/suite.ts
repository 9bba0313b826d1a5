/**
 * The workloads of a chaos run, shared by `npm run chaos` and the short run in `npm test`:
 * sessions (this directory's own), two-phase commit and fencing (with their own faults:
 * coordinator SIGKILL, lease holder paused past its lease), the near cache (its slot dropped
 * under it), and the pool following its primary through switchovers (on two servers of its own).
 * `'short'` keeps the CPU moderate on two cores; `'long'` is for runs of several minutes on
 * their own.
 */
import type { Workload } from './types.js';
import { failoverWorkload } from './workloads/failover.js';
import { fencingWorkload } from './workloads/fencing.js';
import { nearCacheWorkload } from './workloads/near-cache.js';
import { sessionsWorkload } from './workloads/sessions.js';
import { twoPhaseWorkload } from './workloads/two-phase.js';

export function chaosWorkloads(scale: 'short' | 'long'): Workload[] {
  return [
    sessionsWorkload({ users: scale === 'short' ? 8 : 12 }),
    twoPhaseWorkload(),
    fencingWorkload(),
    nearCacheWorkload({ sessions: scale === 'short' ? 4 : 6 }),
    failoverWorkload({ sessions: scale === 'short' ? 4 : 6 }),
  ];
}

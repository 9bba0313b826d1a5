/**
 * How long `checkHistory` takes on 100 000-operation histories of different shapes: sessions,
 * keys, how many writes carry `dependsOn`, and a healthy store against one whose replicas serve
 * stale versions (many violations to prove and report). Histories come from one in-memory store
 * with sessions interleaved by a seeded generator; each is checked three times, median shown.
 */
import { checkHistory } from '../src/testing/checker.js';
import { HistoryRecorder } from '../src/testing/recorder.js';
import { createRng } from '../test/chaos/rng.js';
import { markdownTable, percentile, writeResults } from './util.js';

interface Shape {
  readonly sessions: number;
  readonly keys: number;
  /** Share of writes that depend on the latest write to another key (a reply to a comment). */
  readonly dependsOn: number;
  /** Share of reads served by a replica that lags a random number of versions behind. */
  readonly stale: number;
}

const OPERATIONS = 100_000;
const shapes: Shape[] = [
  { sessions: 32, keys: 64, dependsOn: 0.1, stale: 0 },
  { sessions: 32, keys: 64, dependsOn: 1, stale: 0 },
  { sessions: 8, keys: 8, dependsOn: 0.1, stale: 0 },
  { sessions: 1000, keys: 1000, dependsOn: 0.1, stale: 0 },
  { sessions: 100, keys: 10_000, dependsOn: 0.1, stale: 0 },
  { sessions: 32, keys: 64, dependsOn: 0.1, stale: 0.05 },
];

function history(shape: Shape) {
  const rng = createRng(42);
  let clock = 0;
  const recorder = new HistoryRecorder({ clock: () => clock++ });
  const versions = new Map<string, number>();
  const latestWrite = new Map<string, string>();
  for (let i = 0; i < OPERATIONS; i++) {
    const session = `s${rng.int(0, shape.sessions - 1)}`;
    const key = `k${rng.int(0, shape.keys - 1)}`;
    const startedAt = recorder.now();
    if (rng.chance(0.4)) {
      const version = (versions.get(key) ?? 0) + 1;
      versions.set(key, version);
      const dependency = rng.chance(shape.dependsOn)
        ? latestWrite.get(`k${rng.int(0, shape.keys - 1)}`)
        : undefined;
      const id = `w${i}`;
      recorder.write({
        session,
        key,
        id,
        version,
        node: 'leader',
        startedAt,
        endedAt: recorder.now(),
        acknowledged: true,
        ...(dependency === undefined ? {} : { dependsOn: [dependency] }),
      });
      latestWrite.set(key, id);
    } else {
      const lag = rng.chance(shape.stale) ? rng.int(1, 3) : 0;
      const observed: Record<string, number> = {};
      for (let k = rng.int(1, 4); k > 0; k--) {
        const read = `k${rng.int(0, shape.keys - 1)}`;
        observed[read] = Math.max(0, (versions.get(read) ?? 0) - lag);
      }
      recorder.read({ session, observed, node: 'replica', startedAt, endedAt: recorder.now() });
    }
  }
  return recorder.operations();
}

const rows: (string | number)[][] = [];
const results: unknown[] = [];
for (const shape of shapes) {
  const ops = history(shape);
  const times: number[] = [];
  let violations = 0;
  for (let run = 0; run < 3; run++) {
    const start = performance.now();
    violations = checkHistory(ops).violations.length;
    times.push(performance.now() - start);
  }
  const ms = percentile(times, 50);
  rows.push([
    shape.sessions,
    shape.keys,
    `${shape.dependsOn * 100}%`,
    `${shape.stale * 100}%`,
    violations,
    Math.round(ms),
    Math.round((OPERATIONS / ms) * 1000),
  ]);
  results.push({ ...shape, operations: OPERATIONS, violations, medianMs: ms, times });
}

console.log(
  markdownTable(
    ['sessions', 'keys', 'writes with dependsOn', 'stale reads', 'violations', 'check ms', 'ops/s'],
    rows,
  ),
);
writeResults('checker', results);

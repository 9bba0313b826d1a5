// Version vector compare/merge and HLC now(), ours side by side with `vectorclock` and
// `@thi.ng/vclock` in the same run. Run: npx tsx bench/clocks.bench.ts
import { createRequire } from 'node:module';
import * as thing from '@thi.ng/vclock';
import { HybridLogicalClock, VersionVector } from '../src/clocks/index.js';
import { keep, markdownTable, writeResults } from './util.js';

type Clock = Record<string, number>;
interface VectorClockModule {
  compare(a: Clock, b: Clock): number;
  merge(a: Clock, b: Clock): Clock;
  increment(clock: Clock, nodeId: string): Clock;
}
const vectorclock = createRequire(import.meta.url)('vectorclock') as VectorClockModule;

const ACTOR_COUNTS = [4, 16, 64];
const PAIRS = 256;
const ROUNDS = 7;
const SAMPLE_MS = 60;
const WARMUP_MS = 250;

/** Holds each result so the JIT cannot drop the work; handed to `keep` at the end. */
let sink: unknown;

/** A small deterministic PRNG (xorshift32) so every run measures the same data. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/**
 * Pairs of clocks over the same `n` actors, cycling through the four relations (equal, before,
 * after, concurrent) so that neither early exits nor full scans dominate.
 */
function makePairs(n: number): Array<[Clock, Clock]> {
  const next = random(n * 7919);
  const actors = Array.from({ length: n }, (_, i) => `node-${i}`);
  const pick = () => actors[Math.floor(next() * n)] as string;
  const pairs: Array<[Clock, Clock]> = [];
  for (let p = 0; p < PAIRS; p++) {
    const a: Clock = {};
    for (const actor of actors) a[actor] = 1 + Math.floor(next() * 1000);
    const b: Clock = { ...a };
    const kind = p % 4;
    if (kind === 1) b[pick()]! += 1;
    if (kind === 2) a[pick()]! += 1;
    if (kind === 3) {
      const first = pick();
      let second = pick();
      while (second === first) second = pick();
      a[first]! += 1;
      b[second]! += 1;
    }
    pairs.push([a, b]);
  }
  return pairs;
}

type Run = (iterations: number) => void;
interface Contestant {
  name: string;
  run: Run;
}

function timeBatch(run: Run, iterations: number): number {
  const start = process.hrtime.bigint();
  run(iterations);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Ops per second of one sample lasting at least `ms`. */
function sample(run: Run, batch: number, ms: number): number {
  let ops = 0;
  let elapsed = 0;
  while (elapsed < ms) {
    elapsed += timeBatch(run, batch);
    ops += batch;
  }
  return (ops / elapsed) * 1000;
}

/** A batch size that takes about 2 ms, so the timer's own cost is negligible. */
function calibrate(run: Run): number {
  let batch = 64;
  while (timeBatch(run, batch) < 2) batch *= 2;
  return batch;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * Warms every contestant up, then interleaves their samples and takes medians, so that load
 * from other processes on a shared machine hits all contestants alike (which `opsPerSecond`
 * from util.ts, measuring one function after another, cannot do).
 */
function race(contestants: Contestant[]): Record<string, number> {
  const batches = contestants.map((c) => {
    sample(c.run, calibrate(c.run), WARMUP_MS);
    return calibrate(c.run);
  });
  const samples: number[][] = contestants.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    contestants.forEach((c, i) => {
      samples[i]!.push(sample(c.run, batches[i]!, SAMPLE_MS));
    });
  }
  return Object.fromEntries(contestants.map((c, i) => [c.name, median(samples[i]!)]));
}

function compareContestants(n: number): Contestant[] {
  const pairs = makePairs(n);
  const ours = pairs.map(([a, b]) => [VersionVector.from(a), VersionVector.from(b)] as const);
  const mask = PAIRS - 1;
  return [
    {
      name: 'causeway',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) {
          const [a, b] = ours[k & mask]!;
          sink = a.compare(b);
        }
      },
    },
    {
      name: 'vectorclock',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) {
          const [a, b] = pairs[k & mask]!;
          sink = vectorclock.compare(a, b);
        }
      },
    },
    {
      name: '@thi.ng/vclock',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) {
          const [a, b] = pairs[k & mask]!;
          sink = thing.compare(a, b);
        }
      },
    },
  ];
}

function mergeContestants(n: number): Contestant[] {
  const pairs = makePairs(n);
  const ours = pairs.map(([a, b]) => [VersionVector.from(a), VersionVector.from(b)] as const);
  const mask = PAIRS - 1;
  return [
    {
      name: 'causeway',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) {
          const [a, b] = ours[k & mask]!;
          sink = a.merge(b);
        }
      },
    },
    {
      name: 'vectorclock',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) {
          const [a, b] = pairs[k & mask]!;
          sink = vectorclock.merge(a, b);
        }
      },
    },
    {
      name: '@thi.ng/vclock',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) {
          const [a, b] = pairs[k & mask]!;
          sink = thing.merge(a, b);
        }
      },
    },
  ];
}

/**
 * Neither package has a hybrid logical clock; the nearest operation is making the next local
 * timestamp: `vectorclock.increment` (mutates the clock in place) and `@thi.ng/vclock` `inc`
 * (copies it). Our `now()` reads the physical clock (`Date.now()`) on every call, which they
 * do not; its size does not depend on the number of actors, theirs does.
 */
function tickContestants(n: number): Contestant[] {
  const start = makePairs(n)[0]![0];
  const hlc = new HybridLogicalClock({ nodeId: 'node-0' });
  const mutable: Clock = { ...start };
  let copied: Clock = { ...start };
  return [
    {
      name: 'causeway',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) sink = hlc.now();
      },
    },
    {
      name: 'vectorclock',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) sink = vectorclock.increment(mutable, 'node-0');
      },
    },
    {
      name: '@thi.ng/vclock',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) copied = thing.inc(copied, 'node-0');
        sink = copied;
      },
    },
  ];
}

/** What `now()` costs apart from reading the clock, and what reading the clock costs. */
function hlcBreakdown(): Record<string, number> {
  const fixed = new HybridLogicalClock({
    nodeId: 'node-0',
    physicalClock: () => 1_700_000_000_000,
  });
  return race([
    {
      name: 'HybridLogicalClock.now() with a constant physicalClock',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) sink = fixed.now();
      },
    },
    {
      name: 'Date.now()',
      run: (iterations) => {
        for (let k = 0; k < iterations; k++) sink = Date.now();
      },
    },
  ]);
}

interface Row {
  operation: string;
  actors: number;
  opsPerSecond: Record<string, number>;
  ratio: number;
}

const OPERATIONS: Array<[string, (n: number) => Contestant[]]> = [
  ['compare', compareContestants],
  ['merge', mergeContestants],
  ['HLC now() vs increment', tickContestants],
];

const started = Date.now();
const rows: Row[] = [];
for (const [operation, contestants] of OPERATIONS) {
  for (const actors of ACTOR_COUNTS) {
    const opsPerSecond = race(contestants(actors));
    const { causeway = 0, ...others } = opsPerSecond;
    const ratio = causeway / Math.max(...Object.values(others));
    rows.push({ operation, actors, opsPerSecond, ratio });
  }
}
const breakdown = hlcBreakdown();

const names = ['causeway', 'vectorclock', '@thi.ng/vclock'];
console.log(
  markdownTable(
    ['operation', 'actors', ...names.map((name) => `${name} ops/s`), 'ours / fastest other'],
    rows.map((row) => [
      row.operation,
      row.actors,
      ...names.map((name) => Math.round(row.opsPerSecond[name] ?? 0)),
      `${row.ratio.toFixed(2)}x`,
    ]),
  ),
);
console.log('');
for (const [name, ops] of Object.entries(breakdown)) {
  console.log(`- ${name}: ${Math.round(ops).toLocaleString('en-US')} ops/s`);
}
console.log(`\n${rows.length} rows in ${((Date.now() - started) / 1000).toFixed(1)} s`);

writeResults('clocks', {
  rounds: ROUNDS,
  sampleMs: SAMPLE_MS,
  rows,
  hlcBreakdown: breakdown,
  notes:
    'HLC now() is compared with vectorclock.increment (in place) and @thi.ng/vclock inc ' +
    '(copy), the nearest operations those packages have; now() also reads Date.now().',
});
keep(sink);

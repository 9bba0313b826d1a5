/** Small helpers shared by the benchmarks: timing loops, tables, JSON results. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Runs `fn` repeatedly for about `ms` milliseconds (after a warm-up of a quarter of that) and
 * returns operations per second. `fn` receives the iteration number and should do one operation.
 */
export function opsPerSecond(fn: (i: number) => unknown, ms = 1000): number {
  const deadline = (limit: number) => performance.now() + limit;
  let sink: unknown;
  for (let i = 0, end = deadline(ms / 4); performance.now() < end; i += 1) {
    for (let j = 0; j < 1000; j += 1) sink = fn(i * 1000 + j);
  }
  let ops = 0;
  const start = performance.now();
  const end = start + ms;
  while (performance.now() < end) {
    for (let j = 0; j < 1000; j += 1) sink = fn(ops + j);
    ops += 1000;
  }
  keep(sink);
  return (ops * 1000) / (performance.now() - start);
}

/** Keeps a value observable so the optimiser cannot drop the work that produced it. */
export function keep(value: unknown): void {
  (globalThis as { __causewayBenchSink?: unknown }).__causewayBenchSink = value;
}

/** Percentile (0..100) of `values` (sorted copy), in the values' unit. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

/** Formats rows as a markdown table. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly unknown[])[]) {
  const cell = (v: unknown) =>
    typeof v === 'number'
      ? Number.isInteger(v)
        ? v.toLocaleString('en-US')
        : v.toFixed(2)
      : String(v);
  return [
    `| ${headers.join(' | ')} |`,
    `| ${headers.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/** Writes `bench/results/NAME.json` with the machine it ran on. */
export function writeResults(name: string, data: unknown): void {
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const payload = {
    name,
    date: new Date().toISOString(),
    node: process.version,
    cpus: (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
      ?.hardwareConcurrency,
    data,
  };
  writeFileSync(
    join(dir, `${name}.json`),
    JSON.stringify(payload, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2),
  );
}

/**
 * What classifying a statement costs, and how much read offload the classifier gives up.
 * - Cost per statement, cached (the same text again: an LRU hit) and uncached (`cacheSize: 0`,
 *   every call parses with libpg_query and checks the catalog), over the statements of the
 *   differential corpus (test/support/sql-corpus.ts), against the hand-written lexer the
 *   classifier replaced (the last committed version of adapters/pg/classify.ts that had it,
 *   taken from git into a temporary file; skipped outside a git checkout).
 * - Lost offload on the corpus: read-only statements (by PostgreSQL's own verdict on the hot
 *   standby, test/support/differential.ts) that the classifier still sends to the primary.
 * Run: npm run bench -- classify   (uses CAUSEWAY_TEST_* servers if set, else starts a cluster)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { SqlClassifier } from '../adapters/pg/classify/index.js';
import { type Cluster, startCluster } from '../test/harness/cluster.js';
import { hasTestEnv, testEnv } from '../test/harness/env.js';
import { runDifferential } from '../test/support/differential.js';
import { sqlCorpus } from '../test/support/sql-corpus.js';
import { markdownTable, opsPerSecond, writeResults } from './util.js';

let cluster: Cluster | undefined;
let primaryUrl: string;
let replicaUrl: string;
if (hasTestEnv()) {
  ({ primaryUrl, replicaUrl } = testEnv());
} else {
  cluster = await startCluster();
  primaryUrl = cluster.primary.url;
  replicaUrl = cluster.replica.url;
}

interface Classifier {
  classify(sql: string): { readOnly: boolean };
}

/** The hand-written classifier from git history, or undefined when git cannot give it. */
async function handWrittenClassifiers(): Promise<
  { cached: Classifier; uncached: Classifier; cleanup: () => void } | undefined
> {
  const root = join(import.meta.dirname, '..');
  let source: string;
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    // The commit that removed the lexer; its parent still has it.
    const removal = git(
      'log',
      '-n1',
      '--format=%H',
      '-S',
      'function tokenize(',
      '--',
      'adapters/pg/classify.ts',
    ).trim();
    if (removal === '') return undefined;
    source = git('show', `${removal}^:adapters/pg/classify.ts`);
  } catch {
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'causeway-classify-'));
  const errors = pathToFileURL(join(root, 'src/errors.ts')).href;
  const file = join(dir, 'classify-hand-written.ts');
  writeFileSync(file, source.replaceAll("'../../src/errors.js'", `'${errors}'`));
  const module = (await import(pathToFileURL(file).href)) as {
    SqlClassifier: new (options: { cacheSize: number }) => Classifier;
  };
  return {
    cached: new module.SqlClassifier({ cacheSize: 2000 }),
    uncached: new module.SqlClassifier({ cacheSize: 0 }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const corpus = sqlCorpus().map((statement) => statement.sql);
const catalogPool = new pg.Pool({ connectionString: primaryUrl, max: 1 });
try {
  // The lost offload first: it creates the corpus's tables and functions (and drops them after).
  const report = await runDifferential({ primaryUrl, replicaUrl, corpus: sqlCorpus() });

  const parsed = new SqlClassifier({ cacheSize: 2000 });
  const parsedUncached = new SqlClassifier({ cacheSize: 0 });
  for (const classifier of [parsed, parsedUncached]) {
    classifier.useCatalog((sql) => catalogPool.query(sql));
    await classifier.ready();
  }
  const handWritten = await handWrittenClassifiers();
  const perStatement = (classifier: Classifier) => {
    for (const sql of corpus) classifier.classify(sql); // fill the cache, warm up
    return 1e9 / opsPerSecond((i) => classifier.classify(corpus[i % corpus.length]!), 2000);
  };
  const rows: (string | number)[][] = [
    ['PostgreSQL parser + catalog (this)', perStatement(parsed), perStatement(parsedUncached)],
  ];
  if (handWritten !== undefined) {
    rows.push([
      'hand-written lexer + allow-list (before)',
      perStatement(handWritten.cached),
      perStatement(handWritten.uncached),
    ]);
    handWritten.cleanup();
  }
  const lostRate = (100 * report.lostOffload.length) / report.readOnly;
  console.log(
    markdownTable(['classifier', 'cached, ns per statement', 'uncached, ns per statement'], rows),
  );
  console.log();
  console.log(
    markdownTable(
      ['corpus statements', 'read-only (PostgreSQL)', 'routed', 'unsound', 'lost offload'],
      [
        [
          report.statements,
          report.readOnly,
          report.routed,
          report.unsound.length,
          `${report.lostOffload.length} (${lostRate.toFixed(2)} %)`,
        ],
      ],
    ),
  );
  const reasons = new Map<string, number>();
  for (const { detail } of report.lostOffload) reasons.set(detail, (reasons.get(detail) ?? 0) + 1);
  console.log(`\nlost offload by reason: ${JSON.stringify(Object.fromEntries(reasons))}`);
  writeResults('classify', {
    costNs: rows,
    corpus: {
      statements: report.statements,
      readOnly: report.readOnly,
      routed: report.routed,
      unsound: report.unsound.length,
      lostOffload: report.lostOffload.length,
      lostOffloadReasons: Object.fromEntries(reasons),
    },
  });
} finally {
  await catalogPool.end();
  await cluster?.stop();
}

// One ORM of the matrix in a child process: `tsx scenario-child.ts ORM` (ORM names a file in
// orms/). Run by matrix.test.ts, which reads the report it prints and watches it exit.
import { runScenario, scenarioPool, tableFor } from './scenario.js';

const orm = process.argv[2];
if (orm === undefined || !/^[a-z-]+$/.test(orm)) throw new Error('usage: scenario-child.ts ORM');
const { open } = (await import(`./orms/${orm}.js`)) as typeof import('./orms/pg.js');
const pool = scenarioPool();
await runScenario(tableFor(orm), pool, await open(pool));

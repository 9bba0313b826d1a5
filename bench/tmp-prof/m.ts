import { MemoryDecisionLog } from '../../adapters/memory/decision-log.js';
import { MemoryParticipant } from '../../adapters/memory/participant.js';
import { TwoPhaseCoordinator } from '../../src/txn/coordinator.js';
const users = new MemoryParticipant();
const c = new TwoPhaseCoordinator({ coordinatorId: 'm', log: new MemoryDecisionLog(), participants: { users } });
async function direct() { const b = await users.begin(); await b.query('INSERT', [1]); await b.commit!(); }
async function coord() { await c.transaction(async (tx) => { await tx.participant('users').query('INSERT', [1]); }); }
for (let r = 0; r < 3; r++) for (const [name, f] of [['coord', coord]] as const) {
  const N = 50_000; const t = performance.now();
  for (let i = 0; i < N; i++) await f();
  console.log(name, (((performance.now() - t) / N) * 1000).toFixed(2), 'us');
}
await c.close();

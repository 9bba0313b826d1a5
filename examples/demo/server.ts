/**
 * Causeway demo: read-your-writes over a replica that lags 1.5 s behind its leader.
 *
 *   npm run demo                 serve on http://127.0.0.1:3000 (PORT to change)
 *   npm run demo -- --selftest   make the requests itself, print what happened, exit
 *
 * The "database" is Causeway's in-memory replica set: a leader and one replica that applies each
 * write 1.5 s late, like a busy streaming replica. With PostgreSQL you would use
 * `createReplicatedPool()` from `causeway/pg` and skip the manual routing below.
 */
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import { MemoryReplicaSet } from '../../adapters/memory/index.js';
import { consistency, consistencyOf } from '../../src/express.js';

const REPLICA_DELAY_MS = 1500;
const db = new MemoryReplicaSet<string>({
  replicas: [{ name: 'replica-1', delayMs: REPLICA_DELAY_MS }],
});
db.write('status', 'away');
db.catchUp(); // the starting value is on every node

const app = express();
app.use(express.json());
app.use(
  consistency({
    secret: process.env['CAUSEWAY_SECRET'] ?? 'demo-only-secret-change-me-in-production',
    replicaSet: db,
    routeHeader: true, // adds `causeway-route: <target>;node=…;reason=…` to each response
  }),
);

// A write goes to the leader; Causeway remembers its position in the session token.
app.put('/status', async (req: Request, res: Response) => {
  const position = db.write('status', String(req.body?.text ?? ''));
  await consistencyOf(req).write(position);
  res.json({ saved: true });
});

// What most replica setups do: every read to a replica, however far behind it is.
app.get('/status/plain', (_req: Request, res: Response) => {
  res.json({ status: db.read('replica-1', 'status').value ?? null, node: 'replica-1' });
});

// With Causeway: the router sends the read where the session's last write is visible.
app.get('/status', async (req: Request, res: Response) => {
  const c = consistencyOf(req);
  const route = await c.read();
  const { value, position } = db.read(route.node, 'status');
  c.session.noteRead(position); // later reads never go back in time
  res.json({ status: value ?? null, node: route.node, reason: route.reason });
});

const selftest = process.argv.includes('--selftest') || process.env['DEMO_SELFTEST'] === '1';
const port = selftest ? 0 : Number(process.env['PORT'] ?? 3000);
const server = app.listen(port, '127.0.0.1', async () => {
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  if (!selftest) {
    console.log(`Causeway demo on ${base} (replica-1 applies writes ${REPLICA_DELAY_MS} ms late)`);
    console.log(
      `  curl -si -X PUT ${base}/status -H 'content-type: application/json' -d '{"text":"hi"}'`,
    );
    console.log(`  curl -s ${base}/status/plain        # a plain replica read`);
    console.log(`  curl -si ${base}/status -H 'causeway-session: <token from the PUT>'`);
    return;
  }
  try {
    await runSelftest(base);
    process.exitCode = 0;
  } catch (error) {
    console.error(`selftest failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  } finally {
    server.close();
    await db.close();
  }
});

async function runSelftest(base: string): Promise<void> {
  const text = `back at ${new Date().toISOString().slice(11, 19)}`;
  const saved = await fetch(`${base}/status`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  const token = saved.headers.get('causeway-session') ?? '';
  console.log(
    `1. PUT /status "${text}" -> leader; session token (${token.length} chars) in header and cookie`,
  );

  const plain = (await (await fetch(`${base}/status/plain`)).json()) as { status: string | null };
  console.log(
    `2. GET /status/plain right after -> ${show(plain.status)} from replica-1: stale, the user's own write is missing`,
  );

  const read = async () => {
    const response = await fetch(`${base}/status`, { headers: { 'causeway-session': token } });
    return (await response.json()) as { status: string | null; node: string; reason: string };
  };
  const fresh = await read();
  console.log(
    `3. GET /status with Causeway -> ${show(fresh.status)} from ${fresh.node} (${fresh.reason})`,
  );

  // Wait for the replica to apply the write (about REPLICA_DELAY_MS), not a fixed time: a busy
  // machine can fire the replica's timer late.
  const written = db.snapshot().leader.position;
  if (written === undefined || !(await db.waitFor('replica-1', written, 10_000))) {
    throw new Error('replica-1 never applied the write');
  }
  const later = await read();
  console.log(
    `4. replica-1 has applied the write (~${REPLICA_DELAY_MS} ms); a read later -> ${show(later.status)} from ${later.node} (${later.reason}): replicas serve it again`,
  );

  const ok =
    plain.status !== text &&
    fresh.status === text &&
    fresh.node === 'leader' &&
    later.status === text &&
    later.node === 'replica-1';
  if (!ok) throw new Error('unexpected routing (see above)');
  console.log('Without Causeway the user saw their old status. With it they always see their own,');
  console.log('and reads went back to the replica as soon as it had caught up.');
}

function show(value: string | null): string {
  return value === null ? 'nothing' : `"${value}"`;
}

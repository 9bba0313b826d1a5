/**
 * Causeway in one screen: a leader and a replica that applies writes late, a router, and one
 * session. Run with `npm run example:minimal`.
 */
import { Router, SessionContext, withSession } from 'causeway';
import { MemoryReplicaSet } from 'causeway/memory';

// In-process stand-ins for a PostgreSQL primary and a streaming replica 200 ms behind it.
const db = new MemoryReplicaSet<string>({ replicas: [{ name: 'replica', delayMs: 200 }] });
const router = new Router({ replicaSet: db, onNoCaughtUp: 'leader' });

/** Reads `key` where the router sends it, and tells the session what it saw. */
async function read(session: SessionContext, key: string) {
  const decision = await router.route(session);
  const { value, position } = db.read(decision.node, key);
  session.noteRead(position);
  return `${value ?? '(nothing)'} from ${decision.node} (${decision.reason})`;
}

await withSession(new SessionContext(), async (session) => {
  // A write raises the session's write floor to the position it committed at.
  session.noteWrite(db.write('title', 'Hello, replicas'));

  // The replica has not applied it yet: read-your-writes sends this read to the leader.
  console.log('right after the write:', await read(session, 'title'));

  // Once the replica has caught up, reads go back to it.
  await new Promise((resolve) => setTimeout(resolve, 250));
  console.log('250 ms later:         ', await read(session, 'title'));

  // A session that asks for nothing may read the stale replica at once.
  db.write('title', 'Edited');
  const anyone = new SessionContext(undefined, 'eventual');
  console.log('eventual, meanwhile:  ', await read(anyone, 'title'));
});

await db.close();

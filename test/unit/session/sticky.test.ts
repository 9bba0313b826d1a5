import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { SessionContext } from '../../../src/session/context.js';
import type { NodeStatus, TopologySnapshot } from '../../../src/session/replica-set.js';
import { Router } from '../../../src/session/router.js';
import { hashString, replicaView, stickyIndex } from '../../../src/session/sticky.js';

function snapshotOf(names: readonly string[]): TopologySnapshot {
  const node = (name: string): NodeStatus => ({
    name,
    healthy: true,
    position: undefined,
    lagMs: undefined,
    lagBytes: undefined,
  });
  return { leader: node('leader'), replicas: names.map(node) };
}

function stickyName(names: readonly string[], sessionId: string): string {
  const view = replicaView(snapshotOf(names));
  return view.healthy[stickyIndex(view, hashString(sessionId))]!.name;
}

const replicaNames = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), {
  minLength: 2,
  maxLength: 8,
});

describe('rendezvous hashing', () => {
  it('removing one replica moves only the sessions that were on it', () => {
    fc.assert(
      fc.property(
        replicaNames,
        fc.nat(),
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 1, maxLength: 50 }),
        (names, pick, sessions) => {
          const removed = names[pick % names.length]!;
          const remaining = names.filter((name) => name !== removed);
          for (const id of sessions) {
            const before = stickyName(names, id);
            const after = stickyName(remaining, id);
            if (before !== removed) expect(after).toBe(before);
            else expect(after).not.toBe(removed);
          }
        },
      ),
    );
  });

  it('does not depend on the order the replicas are listed in', () => {
    fc.assert(
      fc.property(replicaNames, fc.string({ minLength: 1 }), (names, id) => {
        expect(stickyName([...names].reverse(), id)).toBe(stickyName(names, id));
      }),
    );
  });

  it('spreads sessions over the replicas', () => {
    const names = ['replica-1', 'replica-2', 'replica-3', 'replica-4'];
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const name = stickyName(names, `session-${i}`);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    for (const name of names) expect(counts.get(name)).toBeGreaterThan(800);
  });
});

describe('sticky routing through the router', () => {
  let db: MemoryReplicaSet | undefined;
  afterEach(() => db?.close());

  it('marking a replica unhealthy moves only its own sessions', () => {
    db = new MemoryReplicaSet({ replicas: 5 });
    const router = new Router({ replicaSet: db });
    const sessions = Array.from({ length: 200 }, (_, i) => new SessionContext({ id: `s${i}` }));
    const before = sessions.map((s) => router.decide(s, 'eventual').node);
    db.setHealthy('replica-3', false);
    sessions.forEach((session, i) => {
      const after = router.decide(session, 'eventual').node;
      if (before[i] === 'replica-3') expect(after).not.toBe('replica-3');
      else expect(after).toBe(before[i]);
    });
    expect(before.filter((name) => name === 'replica-3').length).toBeGreaterThan(0);
  });
});

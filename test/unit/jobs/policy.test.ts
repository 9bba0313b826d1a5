import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/replica-set.js';
import { bullmqConsistency } from '../../../src/jobs/bullmq.js';
import { currentSession, withSession } from '../../../src/session/context.js';
import { consistency } from '../../../src/session/express.js';
import { Router } from '../../../src/session/router.js';

const c = consistency({ secret: 'jobs-unit-secret-of-at-least-32-chars' });
let db: MemoryReplicaSet<string>;
let router: Router;
beforeEach(() => {
  db = new MemoryReplicaSet<string>({ replicas: [{ delayMs: Number.POSITIVE_INFINITY }] });
  router = new Router({ replicaSet: db });
});
afterEach(() => db.close());

/** A job as BullMQ hands it over, recording what the wrapper asked of it. */
function fakeJob<Data extends object>(data: Data) {
  const calls: string[] = [];
  const job = {
    data,
    async updateData(next: Data) {
      job.data = next;
      calls.push('updateData');
    },
    async moveToDelayed() {
      calls.push('moveToDelayed');
    },
  };
  return { job, calls };
}

describe('bullmqConsistency', () => {
  it('refuses bad options with CONFIG', () => {
    expect(() => bullmqConsistency({ consistency: c, router, policy: 'often' as never })).toThrow(
      /policy must be/,
    );
    expect(() => bullmqConsistency({ consistency: c, router, maxDelays: -1 })).toThrow(/maxDelays/);
    expect(() => bullmqConsistency({ consistency: c, router, delay: 5 } as never)).toThrow(
      /did you mean delayMs/,
    );
    expect(() => bullmqConsistency({ consistency: c } as never)).toThrow(/router is required/);
  });

  it("'delayed' delays while the replica lags, then runs at the floor once it caught up", async () => {
    const jobs = bullmqConsistency({ consistency: c, router, maxDelays: 5 });
    const data = withSession(undefined, (session) => {
      session.noteWrite(db.write('k', 'v'));
      return jobs.data({ id: 1 }, 'delayed');
    });
    const { job, calls } = fakeJob(data);
    const run = jobs.processor(async () => 'ran');
    await expect(run(job, 'lock')).rejects.toMatchObject({ name: 'DelayedError' });
    expect(calls).toEqual(['updateData', 'moveToDelayed']);
    expect(job.data.causewayDelays).toBe(1);
    db.catchUp();
    await expect(run(job, 'lock')).resolves.toBe('ran');
  });

  it("'sticky' and 'always' run at once; no session runs fresh", async () => {
    const jobs = bullmqConsistency({ consistency: c, router });
    const data = withSession(undefined, (session) => {
      session.noteWrite(db.write('k', 'v'));
      return jobs.data({ id: 2 });
    });
    expect(data.causewayPolicy).toBe('sticky');
    const levels: string[] = [];
    const run = jobs.processor(async () => {
      levels.push(String((await router.route(currentSession())).reason));
    });
    await run(fakeJob(data).job);
    await run(fakeJob({ ...data, causewayPolicy: 'always' }).job);
    await run(fakeJob({ id: 3 }).job);
    expect(levels).toEqual(['write-floor-not-replicated', 'strong', 'sticky']);
  });
});

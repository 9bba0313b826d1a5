/**
 * Options objects of the framework adapters, the client helpers, the job adapters, session
 * propagation and the near cache, fuzzed like the core's (test/support/options-fuzz.ts). Nothing
 * here opens a connection or a server: the frameworks' factories only configure, and the near
 * cache's options are checked by `NearCache.open()` before it connects.
 */
import 'reflect-metadata';
import pg from 'pg';
import { afterAll } from 'vitest';
import { MemoryReplicaSet } from '../../../adapters/memory/index.js';
import { resolveOptions as resolveNearCacheOptions } from '../../../adapters/pg/near-cache/options.js';
import { createTokenJar, sessionFetch, useSessionTokens } from '../../../src/client/index.js';
import { consistency as fastifyConsistency } from '../../../src/frameworks/fastify.js';
import { consistency as fetchConsistency } from '../../../src/frameworks/fetch.js';
import { consistency as honoConsistency } from '../../../src/frameworks/hono.js';
import { consistency as koaConsistency } from '../../../src/frameworks/koa.js';
import { ConsistencyModule } from '../../../src/frameworks/nest.js';
import { Router } from '../../../src/index.js';
import { bullmqConsistency } from '../../../src/jobs/bullmq.js';
import { graphileWorkerConsistency } from '../../../src/jobs/graphile-worker.js';
import { pgBossConsistency } from '../../../src/jobs/pg-boss.js';
import { withFloor } from '../../../src/propagation/index.js';
import { consistency } from '../../../src/session/express.js';
import { fuzzOptions, type OptionsSubject } from '../../support/options-fuzz.js';

const SECRET = 's'.repeat(32);
const CONSISTENCY_OPTIONALS = [
  'replicaSet',
  'otherReplicaSets',
  'router',
  'level',
  'onNoCaughtUp',
  'waitTimeoutMs',
  'onInvalidToken',
  'ttlMs',
  'secureCookie',
  'cookieDomain',
  'routeHeader',
  'exposeHeader',
  'store',
  'userKey',
];
const JOB_OPTIONALS = ['policy', 'delayMs', 'maxDelays'];

// Never connected: the near cache's options only hold it.
const pool = new pg.Pool({ host: '127.0.0.1', port: 9, max: 1 });
afterAll(() => pool.end());

const replicaSet = new MemoryReplicaSet();
const handler = consistency({ secret: SECRET });
const jobBase = () => ({ consistency: handler, router: new Router({ replicaSet }) });
const axiosLike = {
  interceptors: {
    request: { use: () => 0, eject: () => {} },
    response: { use: () => 0, eject: () => {} },
  },
};

const frameworks: OptionsSubject[] = [
  ['fastify consistency', fastifyConsistency],
  ['koa consistency', koaConsistency],
  ['hono consistency', honoConsistency],
  ['fetch consistency', fetchConsistency],
  ['ConsistencyModule.forRoot', (o: never) => ConsistencyModule.forRoot(o)],
].map(([name, build]) => ({
  name: name as string,
  base: () => ({ secret: SECRET }),
  optional: CONSISTENCY_OPTIONALS,
  build: build as (options: never) => unknown,
}));

const subjects: OptionsSubject[] = [
  ...frameworks,
  {
    name: 'fetch withConsistency',
    base: () => ({}),
    optional: ['level'],
    build: (o) => fetchConsistency({ secret: SECRET }).withConsistency(() => new Response(), o),
  },
  {
    name: 'createTokenJar',
    base: () => ({}),
    optional: ['storage', 'keyPrefix'],
    build: (o) => createTokenJar(o),
  },
  {
    name: 'sessionFetch',
    base: () => ({}),
    optional: ['jar', 'fetch'],
    build: (o) => sessionFetch(o),
  },
  {
    name: 'useSessionTokens',
    base: () => ({}),
    optional: ['jar'],
    build: (o) => useSessionTokens(axiosLike, o),
  },
  {
    name: 'withFloor',
    base: () => ({}),
    optional: ['level'],
    build: (o) => withFloor(undefined, () => undefined, o),
  },
  {
    name: 'bullmqConsistency',
    base: jobBase,
    optional: JOB_OPTIONALS,
    build: (o) => bullmqConsistency(o),
  },
  {
    name: 'pgBossConsistency',
    base: jobBase,
    optional: JOB_OPTIONALS,
    build: (o) => pgBossConsistency(o),
  },
  {
    name: 'graphileWorkerConsistency',
    base: jobBase,
    optional: JOB_OPTIONALS,
    build: (o) => graphileWorkerConsistency(o),
  },
  {
    name: 'NearCache',
    base: () => ({ primary: 'postgres://127.0.0.1:9/none', pool, tables: ['items'] }),
    optional: [
      'publication',
      'slotName',
      'level',
      'waitTimeoutMs',
      'maxRows',
      'maxBytes',
      'retryDelayMs',
      'slotCheckIntervalMs',
    ],
    build: (o) => resolveNearCacheOptions(o),
  },
];

fuzzOptions(subjects);

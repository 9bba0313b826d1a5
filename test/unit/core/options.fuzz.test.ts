/**
 * Options objects of the core's and the storage adapters' public constructors and factories,
 * fuzzed (test/support/options-fuzz.ts; the framework, client and job integrations:
 * options-integrations.fuzz.test.ts). The pg pools and the Redis client are real and never
 * connect: construction does no I/O.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll } from 'vitest';
import {
  MemoryDecisionLog,
  MemoryFenceGuard,
  MemoryLeaseManager,
  MemoryParticipant,
  MemoryReplicaSet,
  MemorySessionStore,
  MemoryVersionedStore,
} from '../../../adapters/memory/index.js';
import {
  createReplicatedPool,
  PgDecisionLog,
  PgFenceGuard,
  PgLeaseManager,
  PgParticipant,
  PgReplicaSet,
  PgVersionedStore,
  SqlClassifier,
} from '../../../adapters/pg/index.js';
import {
  RedisFenceGuard,
  RedisLeaseManager,
  RedisSessionStore,
  RedisVersionedStore,
} from '../../../adapters/redis/index.js';
import { consistency, fenceGuard } from '../../../src/express.js';
import {
  createConflictHandler,
  HybridLogicalClock,
  LwwRegister,
  Router,
  SessionTokens,
  Siblings,
  TwoPhaseCoordinator,
} from '../../../src/index.js';
import { checkHistory, HistoryRecorder } from '../../../src/testing/index.js';
import { fuzzOptions, HANDLER_KEYS, type OptionsSubject } from '../../support/options-fuzz.js';

const SECRET = 's'.repeat(32);

// Never connected: nothing in these tests sends a query or a command.
const pool = new pg.Pool({ host: '127.0.0.1', port: 9, max: 1 });
const redis = new Redis({ host: '127.0.0.1', port: 9, lazyConnect: true, maxRetriesPerRequest: 0 });
afterAll(async () => {
  await pool.end();
  redis.disconnect();
});

const handlerOptionals = [...HANDLER_KEYS.siblings, ...HANDLER_KEYS.lww];

const subjects: OptionsSubject[] = [
  {
    name: 'HybridLogicalClock',
    base: () => ({ nodeId: 'node-1' }),
    optional: ['maxOffsetMs', 'physicalClock'],
    build: (o) => new HybridLogicalClock(o),
  },
  { name: 'Siblings', base: () => ({}), optional: ['maxSiblings'], build: (o) => new Siblings(o) },
  {
    name: 'LwwRegister',
    base: () => ({}),
    optional: ['clock', 'tombstoneGraceMs'],
    build: (o) => new LwwRegister(o),
  },
  {
    name: 'createConflictHandler',
    base: () => ({ handler: 'lww' }),
    optional: handlerOptionals,
    build: (o) => createConflictHandler(o),
  },
  {
    name: 'SessionTokens',
    base: () => ({ secret: [SECRET, `${SECRET}-old`] }),
    optional: ['ttlMs'],
    build: (o) => new SessionTokens(o),
  },
  {
    name: 'Router',
    base: () => ({ replicaSet: new MemoryReplicaSet() }),
    optional: ['level', 'onNoCaughtUp', 'waitTimeoutMs', 'telemetry'],
    build: (o) => new Router(o),
  },
  {
    name: 'TwoPhaseCoordinator',
    base: () => ({
      coordinatorId: 'fuzz',
      log: new MemoryDecisionLog(),
      participants: { a: new MemoryParticipant({ name: 'a' }) },
    }),
    optional: [
      'logParticipant',
      'optimizations',
      'prepareTimeoutMs',
      'maxConcurrentTransactions',
      'transactionTimeoutMs',
      'commitWaitMs',
      'retryInitialDelayMs',
      'retryMaxDelayMs',
      'abortRetentionMs',
      'leases',
      'recoveryLeaseTtlMs',
      'onHeuristic',
      'onRecoveryError',
      'hooks',
    ],
    build: (o) => new TwoPhaseCoordinator(o),
  },
  {
    name: 'consistency',
    base: () => ({ secret: SECRET }),
    optional: [
      'replicaSet',
      'router',
      'level',
      'onNoCaughtUp',
      'waitTimeoutMs',
      'onInvalidToken',
      'ttlMs',
      'secureCookie',
      'cookieDomain',
      'otherReplicaSets',
      'routeHeader',
      'exposeHeader',
      'store',
      'userKey',
    ],
    build: (o) => consistency(o),
  },
  {
    name: 'fenceGuard',
    base: () => ({ guard: new MemoryFenceGuard(), resource: 'leader' }),
    optional: ['header'],
    build: (o) => fenceGuard(o),
  },
  {
    name: 'MemoryReplicaSet',
    base: () => ({ replicas: [{ name: 'r1', delayMs: 5 }, {}] }),
    optional: ['leaderName', 'stream', 'epoch'],
    build: (o) => new MemoryReplicaSet(o),
  },
  {
    name: 'MemorySessionStore',
    base: () => ({}),
    optional: ['ttlMs'],
    build: (o) => new MemorySessionStore(o),
  },
  {
    name: 'MemoryVersionedStore',
    base: () => ({ handler: 'siblings' }),
    optional: [...handlerOptionals, 'storageClock'],
    build: (o) => new MemoryVersionedStore(o),
  },
  {
    name: 'MemoryParticipant',
    base: () => ({}),
    optional: ['name', 'now'],
    build: (o) => new MemoryParticipant(o),
  },
  {
    name: 'MemoryDecisionLog',
    base: () => ({}),
    optional: ['now'],
    build: (o) => new MemoryDecisionLog(o),
  },
  {
    name: 'MemoryLeaseManager',
    base: () => ({}),
    optional: ['now'],
    build: (o) => new MemoryLeaseManager(o),
  },
  {
    name: 'createReplicatedPool',
    base: () => ({ primary: pool, replicas: [{ pool, name: 'replica-1' }] }),
    optional: [
      'replicaSet',
      'replicaSetOptions',
      'router',
      'readOutsideSession',
      'routeCheckedOutReads',
      'classifier',
    ],
    build: (o) => createReplicatedPool(o),
  },
  {
    // The options group of the router the pool builds.
    name: 'createReplicatedPool router',
    base: () => ({}),
    optional: ['level', 'onNoCaughtUp', 'waitTimeoutMs', 'telemetry'],
    build: (o) =>
      createReplicatedPool({ primary: pool, replicas: [{ pool, name: 'replica-1' }], router: o }),
  },
  {
    name: 'PgReplicaSet',
    base: () => ({ primary: pool, replicas: [] }),
    optional: [
      'pollIntervalMs',
      'pollJitter',
      'maxLagMs',
      'maxLagBytes',
      'checkTimeoutMs',
      'connectTimeoutMs',
      'waitPollIntervalMs',
      'failureThreshold',
      'failureWindowMs',
      'poolDefaults',
    ],
    build: (o) => new PgReplicaSet(o),
  },
  {
    name: 'SqlClassifier',
    base: () => ({}),
    optional: ['cacheSize', 'maxCachedLength', 'readOnlyFunctions', 'catalogRefreshMs'],
    build: (o) => new SqlClassifier(o),
  },
  {
    name: 'PgVersionedStore',
    base: () => ({ pool, handler: 'siblings' }),
    optional: ['table', 'createTable', 'maxRetries', ...handlerOptionals],
    build: (o) => new PgVersionedStore(o),
  },
  { name: 'PgParticipant', base: () => ({ pool }), build: (o) => new PgParticipant(o) },
  {
    name: 'PgDecisionLog',
    base: () => ({ pool }),
    optional: ['table', 'createTable'],
    build: (o) => new PgDecisionLog(o),
  },
  {
    name: 'PgLeaseManager',
    base: () => ({ pool }),
    optional: ['table', 'createTable'],
    build: (o) => new PgLeaseManager(o),
  },
  {
    name: 'PgFenceGuard',
    base: () => ({ pool }),
    optional: ['table', 'createTable'],
    build: (o) => new PgFenceGuard(o),
  },
  {
    name: 'RedisSessionStore',
    base: () => ({ redis }),
    optional: ['ttlMs', 'keyPrefix', 'timeoutMs'],
    build: (o) => new RedisSessionStore(o),
  },
  {
    name: 'RedisVersionedStore',
    base: () => ({ redis, handler: 'lww' }),
    optional: ['keyPrefix', 'maxAttempts', ...handlerOptionals],
    build: (o) => new RedisVersionedStore(o),
  },
  {
    name: 'RedisLeaseManager',
    base: () => ({ redis }),
    optional: ['keyPrefix', 'waitForReplicas'],
    build: (o) => new RedisLeaseManager(o),
  },
  {
    name: 'RedisLeaseManager waitForReplicas',
    base: () => ({ replicas: 1, timeoutMs: 100 }),
    build: (o) => new RedisLeaseManager({ redis, waitForReplicas: o }),
  },
  {
    name: 'RedisFenceGuard',
    base: () => ({ redis }),
    optional: ['keyPrefix'],
    build: (o) => new RedisFenceGuard(o),
  },
  {
    name: 'HistoryRecorder',
    base: () => ({}),
    optional: ['clock'],
    build: (o) => new HistoryRecorder(o),
  },
  {
    name: 'checkHistory',
    base: () => ({ guarantees: ['monotonic-reads'] }),
    build: (o) => checkHistory([], o),
  },
];

fuzzOptions(subjects);

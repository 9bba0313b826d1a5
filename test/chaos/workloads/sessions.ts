/**
 * The sessions workload: simulated users make HTTP requests to an in-process Express app that
 * uses `consistency()` with a `RedisSessionStore` and a replicated pool over the primary and both
 * replicas, while the driver breaks the cluster underneath. Every user runs one request at a
 * time; a user has one or two devices, and each device keeps its own token (cookie or header),
 * so that read-your-writes across devices rests on the session store alone.
 *
 * Data: registers (a key, a version bumped at the primary by every write, the id of the write
 * that made it) and a log of every write. A read returns several keys in one statement, with
 * `inet_server_port()` naming the node that served it; a reply to a comment depends on the
 * comment write it read (consistent prefix). Afterwards the history is checked twice: per
 * device with every guarantee (what a token promises), per user with read-your-writes (what
 * the store promises); every acknowledged write must be at the primary with its version (or a
 * later one), and the replicas must hold what the primary holds.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  createReplicatedPool,
  type PoolRouteEvent,
  type ReplicatedPool,
} from '../../../adapters/pg/replicated-pool.js';
import { RedisSessionStore } from '../../../adapters/redis/session-store.js';
import { consistency } from '../../../src/express.js';
import type { ReadOperation } from '../../../src/testing/index.js';
import { sleep } from '../../../src/util/timers.js';
import { REGISTERS_TABLE } from '../faults.js';
import type { ChaosContext, Workload, WorkloadReport } from '../types.js';
import {
  assemble,
  compareReplicas,
  createTables,
  describeError,
  describeViolations,
  formatCounts,
  formatGuarantees,
  isDivergent,
  type Observed,
  type RegisterRow,
  WRITES_TABLE,
} from './sessions-report.js';
import { Device, type User } from './sessions-users.js';

export interface SessionsWorkloadOptions {
  /** Simulated users. Default 10. */
  users?: number;
  /** Fraction of users with a second device (their own token, shared state in Redis). Default 0.5. */
  twoDeviceShare?: number;
  /** Keys every user shares. Default 4. */
  sharedKeys?: number;
  /** Comment threads (a comment key and a reply key each). Default 3. */
  threads?: number;
  /** Pause between a user's requests, drawn uniformly in this range (ms). Default [40, 160]. */
  thinkMs?: readonly [number, number];
  /** Client-side bound on one request. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /**
   * The session store's bound on each Redis call. Default 300 ms: the library's 100 ms is for a
   * healthy service; on a 2-core machine running five servers and the faults it would make most
   * requests fall back to the leader and test little.
   */
  storeTimeoutMs?: number;
  /** The replica set's bound on each check query (see `PgReplicaSetOptions`). Default 500 ms. */
  checkTimeoutMs?: number;
  /**
   * Keep each user's floors in Redis. Default true. False leaves tokens alone, so a user's second
   * device may miss the first one's writes: the per-user check then finds them (a check that the
   * check can fail).
   */
  sessionStore?: boolean;
}

const SECRET = 'chaos-sessions-secret-at-least-32-characters';
const ROUTE = { read: '/read', write: '/write' } as const;

export function sessionsWorkload(options: SessionsWorkloadOptions = {}): Workload {
  const userCount = options.users ?? 10;
  const twoDeviceShare = options.twoDeviceShare ?? 0.5;
  const sharedKeys = Array.from({ length: options.sharedKeys ?? 4 }, (_, i) => `shared/${i}`);
  const threads = Array.from({ length: options.threads ?? 3 }, (_, i) => ({
    comment: `thread${i}/comment`,
    reply: `thread${i}/reply`,
  }));
  const [thinkMin, thinkMax] = options.thinkMs ?? [40, 160];
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;

  let ctx: ChaosContext | undefined;
  let pool: ReplicatedPool | undefined;
  let redis: Redis | undefined;
  let server: Server | undefined;
  let baseUrl = '';
  let stopping = false;
  let loops: Promise<void>[] = [];
  let nodeByPort = new Map<number, string>();
  const observed: Observed[] = [];
  const routes = new Map<string, number>();
  const errors = new Map<string, number>();
  let operations = 0;
  /** Write ids this workload made (a reply may only depend on one of these). */
  const ownWriteIds = new Set<string>();

  const countError = (what: string) => errors.set(what, (errors.get(what) ?? 0) + 1);
  const nodeOf = (port: unknown) => nodeByPort.get(Number(port)) ?? `port-${String(port)}`;

  function app(): express.Express {
    const server = express();
    server.use(
      options.sessionStore === false
        ? consistency({ secret: SECRET, router: pool!.router })
        : consistency({
            secret: SECRET,
            router: pool!.router,
            store: new RedisSessionStore({
              redis: redis!,
              timeoutMs: options.storeTimeoutMs ?? 300,
            }),
            userKey: (req) => {
              const user = req.headers['x-user'];
              return typeof user === 'string' ? user : undefined;
            },
          }),
    );
    server.get(ROUTE.read, async (req: Request, res: Response) => {
      try {
        const keys = String(req.query['keys'] ?? '').split(',');
        // One statement, one snapshot, on the node the pool chose: the port says which.
        const { rows } = await pool!.query<RegisterRow & { port: number }>(
          `SELECT inet_server_port() AS port, k.key, coalesce(r.version, 0)::int AS version, r.write_id
           FROM unnest($1::text[]) AS k(key) LEFT JOIN ${REGISTERS_TABLE} r ON r.key = k.key`,
          [keys],
        );
        res.json({ port: rows[0]?.port, rows });
      } catch (error) {
        res.status(500).json({ error: describeError(error) });
      }
    });
    server.post(ROUTE.write, async (req: Request, res: Response) => {
      try {
        const key = String(req.query['key']);
        const id = String(req.query['id']);
        const { rows } = await pool!.query<{ version: number; port: number }>(
          `WITH bumped AS (
             INSERT INTO ${REGISTERS_TABLE} AS r (key, version, write_id) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET version = r.version + 1, write_id = EXCLUDED.write_id
             RETURNING key, version)
           INSERT INTO ${WRITES_TABLE} (id, key, version) SELECT $2, key, version FROM bumped
           RETURNING version::int AS version, inet_server_port() AS port`,
          [key, id],
        );
        res.json(rows[0]);
      } catch (error) {
        res.status(500).json({ error: describeError(error) });
      }
    });
    return server;
  }

  async function request(user: User, device: Device, path: string): Promise<unknown> {
    const response = await fetch(`${baseUrl}${path}`, {
      method: path.startsWith(ROUTE.write) ? 'POST' : 'GET',
      headers: device.headers(user.name),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    device.absorb(response);
    const body = (await response.json()) as { error?: string };
    if (response.status !== 200) throw new Error(body.error ?? `HTTP ${response.status}`);
    return body;
  }

  async function read(user: User, device: Device, keys: readonly string[]) {
    operations += 1;
    const startedAt = performance.now();
    try {
      const path = `${ROUTE.read}?keys=${encodeURIComponent(keys.join(','))}`;
      const body = (await request(user, device, path)) as { port: number; rows: RegisterRow[] };
      const endedAt = performance.now();
      const versions: Record<string, number> = {};
      for (const row of body.rows) versions[row.key] = row.version;
      observed.push({
        user: user.name,
        device: device.name,
        op: { kind: 'read', observed: versions, node: nodeOf(body.port), startedAt, endedAt },
      });
      return body.rows;
    } catch (error) {
      countError(`read: ${describeError(error)}`);
      return undefined;
    }
  }

  async function write(user: User, device: Device, key: string, dependsOn?: string) {
    operations += 1;
    user.writes += 1;
    const id = `${device.name}.w${user.writes}`;
    ownWriteIds.add(id);
    const startedAt = performance.now();
    const base = {
      kind: 'write' as const,
      key,
      id,
      ...(dependsOn ? { dependsOn: [dependsOn] } : {}),
    };
    try {
      const path = `${ROUTE.write}?key=${encodeURIComponent(key)}&id=${encodeURIComponent(id)}`;
      const body = (await request(user, device, path)) as { version: number; port: number };
      observed.push({
        user: user.name,
        device: device.name,
        op: {
          ...base,
          version: body.version,
          node: nodeOf(body.port),
          startedAt,
          endedAt: performance.now(),
          acknowledged: true,
        },
      });
    } catch (error) {
      countError(`write: ${describeError(error)}`);
      // Unacknowledged: it may still have committed; verify() looks its version up.
      observed.push({
        user: user.name,
        device: device.name,
        op: {
          ...base,
          version: 0,
          node: 'unknown',
          startedAt,
          endedAt: performance.now(),
          acknowledged: false,
        },
      });
    }
  }

  async function runUser(user: User): Promise<void> {
    const { rng } = user;
    while (!stopping) {
      const device = rng.pick(user.devices);
      const thread = rng.pick(threads);
      const dice = rng.next();
      if (dice < 0.15) {
        await write(user, device, rng.pick(user.ownKeys));
      } else if (dice < 0.25) {
        await write(user, device, rng.pick(sharedKeys));
      } else if (dice < 0.32) {
        await write(user, device, thread.comment);
      } else {
        const keys = [
          ...user.ownKeys.filter(() => rng.chance(0.6)),
          ...sharedKeys.filter(() => rng.chance(0.5)),
          thread.comment,
          thread.reply,
        ];
        const rows = await read(user, device, keys);
        // Replying to what was read: the reply depends on the comment write it answers.
        const comment = rows?.find((row) => row.key === thread.comment);
        if (
          !stopping &&
          dice > 0.85 &&
          comment?.write_id != null &&
          ownWriteIds.has(comment.write_id)
        ) {
          await write(user, device, thread.reply, comment.write_id);
        }
      }
      await sleep(rng.int(thinkMin, thinkMax));
    }
  }

  return {
    name: 'sessions',

    async start(context) {
      ctx = context;
      const { cluster } = context;
      nodeByPort = new Map([
        [cluster.primary.port, 'primary'],
        [cluster.replica.port, cluster.replica.name],
        [cluster.laggingReplica.port, cluster.laggingReplica.name],
      ]);
      await createTables(cluster);
      redis = new Redis(cluster.redis.url);
      redis.on('error', () => {}); // expected while the fault driver has Redis stopped
      pool = createReplicatedPool({
        primary: { name: 'primary', config: { connectionString: cluster.primary.url, max: 8 } },
        replicas: [cluster.replica, cluster.laggingReplica].map((replica) => ({
          name: replica.name,
          config: { connectionString: replica.url, max: 4 },
        })),
        classifier: { readOnlyFunctions: ['inet_server_port'] },
        replicaSetOptions: { checkTimeoutMs: options.checkTimeoutMs ?? 500 },
      });
      pool.on('error', () => {});
      pool.on('route', (event: PoolRouteEvent) => {
        const name = `${event.target}:${event.reason}`;
        routes.set(name, (routes.get(name) ?? 0) + 1);
      });
      const listening = app().listen(0, '127.0.0.1');
      server = listening;
      await new Promise<void>((resolve, reject) => {
        listening.once('listening', resolve);
        listening.once('error', reject);
      });
      baseUrl = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
      const users: User[] = Array.from({ length: userCount }, (_, i) => {
        const rng = context.rng.fork();
        const name = `u${i}`;
        const deviceCount = rng.chance(twoDeviceShare) ? 2 : 1;
        return {
          name,
          rng,
          devices: Array.from(
            { length: deviceCount },
            (_, d) => new Device(`${name}.d${d}`, rng.chance(0.5)),
          ),
          ownKeys: [0, 1, 2].map((k) => `${name}/${k}`),
          writes: 0,
        };
      });
      const twoDevice = users.filter((u) => u.devices.length === 2).length;
      context.log(`${users.length} users (${twoDevice} with two devices) at ${baseUrl}`);
      loops = users.map((user) => runUser(user));
    },

    async stop() {
      stopping = true;
      await Promise.all(loops);
      await new Promise<void>((resolve) => {
        if (server === undefined) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },

    async verify(): Promise<WorkloadReport> {
      const failures: string[] = [];
      const cluster = ctx!.cluster;
      let lostWrites = 0;
      let extraViolations = 0;
      const admin = new pg.Client({ connectionString: cluster.primary.url });
      await admin.connect();
      try {
        const writes = observed.flatMap((o) => (o.op.kind === 'write' ? [o.op] : []));
        const { rows: logged } = await admin.query<{ id: string; key: string; version: number }>(
          `SELECT id, key, version::int AS version FROM ${WRITES_TABLE}`,
        );
        const loggedById = new Map(logged.map((row) => [row.id, row]));
        const { rows: registers } = await admin.query<RegisterRow>(
          `SELECT key, version::int AS version, write_id FROM ${REGISTERS_TABLE}`,
        );
        const finalVersion = new Map(registers.map((row) => [row.key, row.version]));
        for (const w of writes) {
          const row = loggedById.get(w.id);
          if (!w.acknowledged) continue;
          if (row === undefined || row.version !== w.version || row.key !== w.key) {
            lostWrites += 1;
            failures.push(
              `lost write ${w.id}: acknowledged as ${w.key} version ${w.version}, the primary's log has ${row ? `${row.key} version ${row.version}` : 'nothing'}`,
            );
          } else if ((finalVersion.get(w.key) ?? 0) < w.version) {
            lostWrites += 1;
            failures.push(
              `lost write ${w.id}: ${w.key} is at version ${finalVersion.get(w.key) ?? 0} on the primary, below the acknowledged ${w.version}`,
            );
          }
        }
        const diverged = await compareReplicas(cluster, registers);
        extraViolations += diverged.length;
        failures.push(...diverged);
        const history = assemble(observed, loggedById);
        const promoted = history.devices
          .operations()
          .filter((op) => op.kind === 'read' && Object.values(op.observed).some(isDivergent));
        if (promoted.length > 0) {
          extraViolations += promoted.length;
          const first = promoted[0] as ReadOperation;
          failures.push(
            `${promoted.length} reads saw writes made on a promoted replica, e.g. session ${first.session} on ${first.node} at ${first.startedAt.toFixed(0)} ms: ${JSON.stringify(first.observed)}`,
          );
        }
        const byDevice = history.devices.check();
        const byUser = history.users.check({ guarantees: ['read-your-writes'] });
        failures.push(...describeViolations('per device', byDevice));
        failures.push(...describeViolations('across devices', byUser));
        const reads = history.devices.operations().filter((op) => op.kind === 'read');
        const byNode = new Map<string, number>();
        for (const op of reads) byNode.set(op.node, (byNode.get(op.node) ?? 0) + 1);
        return {
          workload: 'sessions',
          operations,
          violations: byDevice.violations.length + byUser.violations.length + extraViolations,
          lostWrites,
          staleWritesRejected: 0,
          staleWritesAccepted: 0,
          failures,
          history: {
            devices: history.devices.toJSON(),
            users: history.users.toJSON(),
            violations: [...byDevice.violations, ...byUser.violations],
          },
          notes: [
            `${writes.length} writes (${writes.filter((w) => w.acknowledged).length} acknowledged), ${reads.length} reads recorded; ${operations - writes.length - reads.length} reads failed`,
            `reads served by ${formatCounts(byNode)}`,
            `routing: ${formatCounts(routes)}`,
            ...(errors.size > 0 ? [`client errors: ${formatCounts(errors)}`] : []),
            `checked per device (${formatGuarantees(byDevice)}) and per user (read-your-writes ${byUser.counts['read-your-writes']})`,
          ],
        };
      } finally {
        await admin.end();
        await pool?.end();
        redis?.disconnect();
      }
    },
  };
}

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startRedis } from './redis.js';
import type { RedisServer } from './types.js';

const run = promisify(execFile);

/** A local Redis Cluster: three masters with one replica each, on free ports of 127.0.0.1. */
export interface RedisClusterHandle {
  /** Every node, as `startRedis` made them. */
  readonly nodes: readonly RedisServer[];
  /** `{ host, port }` of every node, the seed list of an ioredis `Cluster`. */
  readonly seeds: readonly { host: string; port: number }[];
  /** `redis-cli -p port args...` on one node, its output trimmed. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The port of the master serving `key`'s slot, and of its replica (none during a failover). */
  ownersOf(key: string): Promise<{ master: number; replica: number | undefined }>;
  /** Resolves once every node reports `cluster_state:ok` and agrees on the masters. */
  waitUntilStable(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts six `redis-server --cluster-enabled yes` nodes and joins them with `redis-cli --cluster
 * create --cluster-replicas 1`. A node is declared failed after 2 s (`cluster-node-timeout`).
 */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.allSettled(nodes.map((node) => node.stop()));
  };
  try {
    for (let i = 0; i < 6; i++) {
      nodes.push(
        await startRedis({
          name: `redis-cluster-${i}`,
          args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'],
        }),
      );
    }
    const cli = async (port: number, ...args: string[]) =>
      (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args])).stdout.trim();
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    const handle: RedisClusterHandle = {
      nodes,
      seeds: nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      cli,
      async waitUntilStable(timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const views = await Promise.all(
            nodes.map(async (node) => {
              const info = await cli(node.port, 'CLUSTER', 'INFO').catch(() => '');
              const masters = await cli(node.port, 'CLUSTER', 'NODES').catch(() => '');
              const masterIds = masters
                .split('\n')
                .filter((line) => {
                  const flags = (line.split(' ')[2] ?? '').split(',');
                  return flags.includes('master') && !flags.some((f) => f.startsWith('fail'));
                })
                .map((line) => line.split(' ')[0])
                .sort()
                .join(',');
              return { ok: info.includes('cluster_state:ok'), masterIds };
            }),
          );
          if (views.every((v) => v.ok && v.masterIds === views[0]!.masterIds)) return;
          if (Date.now() > deadline) throw new Error('the Redis Cluster did not become stable');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      },
      async ownersOf(key) {
        const slot = Number(await cli(nodes[0]!.port, 'CLUSTER', 'KEYSLOT', key));
        const lines = (await cli(nodes[0]!.port, 'CLUSTER', 'NODES')).split('\n');
        const port = (line: string) => Number(line.split(' ')[1]!.split('@')[0]!.split(':')[1]);
        const master = lines.find((line) => {
          if (!(line.split(' ')[2] ?? '').split(',').includes('master')) return false;
          return line
            .split(' ')
            .slice(8)
            .some((range) => {
              const [from, to = from] = range.split('-').map(Number);
              return slot >= from! && slot <= to!;
            });
        });
        if (master === undefined) throw new Error(`no master serves slot ${slot}`);
        const id = master.split(' ')[0];
        const replica = lines.find((line) => line.split(' ')[3] === id);
        return { master: port(master), replica: replica === undefined ? undefined : port(replica) };
      },
      stop,
    };
    await handle.waitUntilStable();
    return handle;
  } catch (error) {
    await stop();
    throw error;
  }
}

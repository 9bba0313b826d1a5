// The replicated pool's `primary` and `replicaSet` options, resolved: the name and settings of
// the pool's own connections, and whether a given replica set can route.
import pg from 'pg';
import { configError } from '../../src/adapter-kit.js';
import { copyConfig, poolOptions } from './pg-nodes.js';
import type { ReplicatedPoolOptions, RoutingReplicaSet } from './pool-contracts.js';

/** The leader's node name from the `primary` option (default `'primary'`). */
export function primaryName(option: ReplicatedPoolOptions['primary']): string {
  if (Array.isArray(option)) return 'primary';
  const name = (option as { name?: unknown } | undefined)?.name;
  if (name === undefined || option instanceof pg.Pool) return 'primary';
  if (typeof name !== 'string' || name === '') {
    throw configError('createReplicatedPool: primary.name must be a non-empty string');
  }
  return name;
}

/** The configuration of the replicated pool's own connections, from the `primary` option. */
export function resolvePrimaryConfig(option: ReplicatedPoolOptions['primary']): pg.PoolConfig {
  // A list of candidates: the first one's settings (the replica set checks the list; the pool's
  // connections take their host and port from the primary found).
  if (Array.isArray(option)) return resolvePrimaryConfig(option[0]);
  if (typeof option === 'string') return copyConfig(option);
  if (typeof option === 'object' && option !== null) {
    if ('config' in option) {
      const config: unknown = option.config;
      if (typeof config === 'string' || (typeof config === 'object' && config !== null)) {
        return copyConfig(config);
      }
    } else {
      const pool = 'pool' in option ? option.pool : option;
      const options = typeof pool === 'object' && pool !== null ? poolOptions(pool) : undefined;
      if (options !== undefined) return options;
    }
  }
  throw configError(
    'createReplicatedPool: primary must be { config }, a URL, or a pg Pool (whose options the replicated pool uses for its own connections)',
  );
}

export function isRoutingReplicaSet(value: unknown): value is RoutingReplicaSet {
  const set = value as Partial<RoutingReplicaSet> | null;
  return (
    typeof set === 'object' &&
    set !== null &&
    Array.isArray(set.nodeNames) &&
    [
      'snapshot',
      'pool',
      'connectionConfig',
      'positionAfter',
      'positionOn',
      'markDown',
      'waitFor',
      'queryLeader',
    ].every((method) => typeof (set as Record<string, unknown>)[method] === 'function')
  );
}

// The routed pool that every ORM recipe in this folder takes (README, "ORMs and query builders").
import { createReplicatedPool, type ReplicatedPool, type ReplicatedPoolOptions } from 'causeway/pg';

/** Connection strings of the primary and of its streaming replicas. */
export interface DatabaseUrls {
  readonly primary: string;
  readonly replicas: readonly string[];
}

export function ormPool(
  urls: DatabaseUrls,
  options: Omit<ReplicatedPoolOptions, 'primary' | 'replicas'> = {},
): ReplicatedPool {
  return createReplicatedPool({
    primary: urls.primary,
    replicas: urls.replicas.map((url, i) => ({ name: `replica-${i + 1}`, config: url })),
    // Most ORMs check out a client for every query: let the reads such a client runs outside a
    // transaction go to replicas too, without holding a primary connection meanwhile.
    routeCheckedOutReads: 'on-demand',
    ...options,
  });
}

// Drizzle (node-postgres driver) over the routed pool (README, "ORMs and query builders").

import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';

export function drizzleOverCauseway(pool: pg.Pool): NodePgDatabase {
  // Drizzle runs `db.transaction()` on a checked-out client when its client is a pg.Pool.
  return drizzle({ client: pool });
}

// Knex 3.3+ over the routed pool (README, "ORMs and query builders").

import knex, { type Knex } from 'knex';
import type pg from 'pg';

export function knexOverCauseway(pool: pg.Pool): Knex {
  // `connectionPool` (Knex 3.3): Knex checks out a client from the pool for each query and each
  // transaction; Knex does not end a pool it was given.
  return knex({ client: 'pg', connectionPool: pool });
}

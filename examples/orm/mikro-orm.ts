// MikroORM 6 (PostgreSQL driver, on Knex 3.1) over the routed pool (README, "ORMs and query
// builders"). MikroORM 7 needs Node 22.17 or newer; this project is tested on Node 20.

import {
  type EntitySchema,
  MikroORM,
  PostgreSqlDriver,
  PostgreSqlKnexDialect,
} from '@mikro-orm/postgresql';
import type pg from 'pg';
import { routedKnexClient } from './knex-client.js';

export function mikroOrmOverCauseway(pool: pg.Pool, entities: EntitySchema[]): Promise<MikroORM> {
  return MikroORM.init({
    driver: PostgreSqlDriver,
    entities,
    // MikroORM's Knex takes its connections from the routed pool: no connection settings here.
    dbName: 'unused',
    driverOptions: { client: routedKnexClient(PostgreSqlKnexDialect, pool) },
    // `orm.close()` does not end the pool: end it after.
  });
}

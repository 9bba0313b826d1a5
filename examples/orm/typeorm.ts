// TypeORM over the routed pool (README, "ORMs and query builders").
import pg from 'pg';
import { DataSource, type EntitySchema } from 'typeorm';

export function typeormOverCauseway(pool: pg.Pool, entities: EntitySchema[]): DataSource {
  return new DataSource({
    type: 'postgres',
    entities,
    // TypeORM builds its pool with `new driver.Pool(options)`: hand it the routed pool instead.
    // Its query runners check out a client per query (hence `routeCheckedOutReads`), and
    // `destroy()` ends the pool.
    driver: {
      ...pg,
      Pool: function RoutedPool() {
        return pool;
      },
    },
  });
}

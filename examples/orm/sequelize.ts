// Sequelize 6 over the routed pool (README, "ORMs and query builders").

import { pooledClientModule } from 'causeway/pg';
import type pg from 'pg';
import { type Options, Sequelize } from 'sequelize';

export function sequelizeOverCauseway(pool: pg.Pool, options: Options = {}): Sequelize {
  // `keepDefaultTimezone` is read by Sequelize 6 but missing from its types.
  const settings: Options & { keepDefaultTimezone: boolean } = {
    ...options,
    dialect: 'postgres',
    // Sequelize's own pg.Clients become views of the pool (see pooledClientModule).
    dialectModule: pooledClientModule(pool),
    // Sequelize sets the time zone and client_min_messages on each new connection: here no
    // connection of its own, so set them in the pool connections' config if you need them.
    keepDefaultTimezone: true,
    dialectOptions: { ...options.dialectOptions, clientMinMessages: 'ignore' },
  };
  return new Sequelize(settings);
}

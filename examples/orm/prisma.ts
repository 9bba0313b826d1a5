// Prisma 7 (`prisma-client` generator, `@prisma/adapter-pg`) over the routed pool (README, "ORMs
// and query builders"). `npm run orm:generate` generates the client from prisma/schema.prisma.

import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import { PrismaClient } from './prisma/generated/client.js';

export function prismaOverCauseway(pool: pg.Pool): PrismaClient {
  // The adapter uses a pool it is given only if it is `instanceof pg.Pool` (otherwise it opens a
  // pool of its own): the routed pool is one. `$disconnect()` does not end the pool.
  return new PrismaClient({ adapter: new PrismaPg(pool) });
}

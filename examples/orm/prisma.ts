// Prisma 7 (`prisma-client` generator, `@prisma/adapter-pg`) over the routed pool (README, "ORMs
// and query builders"). `npm run orm:generate` generates the client from prisma/schema.prisma.
import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import { PrismaClient } from './prisma/generated/client.js';

/** The model delegates' `findFirst`/`findFirstOrThrow`, by the delegate's name (`item`...). */
type FindFirst = Record<
  string,
  Record<'findFirst' | 'findFirstOrThrow', (args: unknown) => Promise<unknown>>
>;

export function prismaOverCauseway(pool: pg.Pool) {
  // The adapter uses a pool it is given only if it is `instanceof pg.Pool` (otherwise it opens a
  // pool of its own): the routed pool is one. `$disconnect()` does not end the pool.
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const delegates = prisma as unknown as FindFirst;
  const delegate = (model: string) => delegates[model.charAt(0).toLowerCase() + model.slice(1)]!;
  // Prisma batches the findUnique calls made in the same tick into one statement, which runs in
  // the session of the first caller: another session's read in it would ignore that session's
  // floors (a read of its own write could go to a lagging replica). findFirst is not batched.
  return prisma.$extends({
    query: {
      $allModels: {
        findUnique: ({ model, args }) => delegate(model).findFirst(args),
        findUniqueOrThrow: ({ model, args }) => delegate(model).findFirstOrThrow(args),
      },
    },
  });
}

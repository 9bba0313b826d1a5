// ORM matrix and bench: Prisma 7 over the routed pool, through the README's recipe.
import type pg from 'pg';
import { prismaOverCauseway } from '../../../../examples/orm/prisma.js';
import { type OrmUnderTest, RollbackRequested, TX_PROBE_SQL, type TxProbe } from '../scenario.js';

// Prisma has no streaming or cursor API.
export async function open(pool: pg.Pool): Promise<OrmUnderTest> {
  const prisma = prismaOverCauseway(pool);
  return {
    async insert(id, v) {
      await prisma.item.create({ data: { id, v } });
    },
    async read(id) {
      return (await prisma.item.findUnique({ where: { id } }))?.v;
    },
    transaction(id, v, during, rollback) {
      return prisma.$transaction(async (tx) => {
        await tx.item.create({ data: { id, v } });
        const [first] = await tx.$queryRawUnsafe<TxProbe[]>(TX_PROBE_SQL);
        await during();
        const [second] = await tx.$queryRawUnsafe<TxProbe[]>(TX_PROBE_SQL);
        if (rollback) throw new RollbackRequested();
        return [first!, second!];
      });
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

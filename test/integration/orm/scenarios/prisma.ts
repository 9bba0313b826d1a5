// ORM matrix: Prisma 7 over the routed pool, through the README's recipe.
import { prismaOverCauseway } from '../../../../examples/orm/prisma.js';
import {
  RollbackRequested,
  runScenario,
  scenarioPool,
  TX_PROBE_SQL,
  type TxProbe,
  tableFor,
} from '../scenario.js';

const pool = scenarioPool();
const prisma = prismaOverCauseway(pool);

// Prisma has no streaming or cursor API.
await runScenario(tableFor('prisma'), pool, {
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
});

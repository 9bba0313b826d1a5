// Kysely over the routed pool (README, "ORMs and query builders").
import { Kysely, PostgresDialect } from 'kysely';
import Cursor from 'pg-cursor';
import type { ReplicatedPool } from '../../adapters/pg/index.js';

export function kyselyOverCauseway<Database>(pool: ReplicatedPool): Kysely<Database> {
  // Kysely takes any object with connect()/end(); `cursor` enables `.stream()` (on the primary).
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool, cursor: Cursor }) });
}

// Kysely over the routed pool (README, "ORMs and query builders").

import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';
import Cursor from 'pg-cursor';

export function kyselyOverCauseway<Database>(pool: pg.Pool): Kysely<Database> {
  // Kysely takes any object with connect()/end(); `cursor` enables `.stream()` (on the primary).
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool, cursor: Cursor }) });
}

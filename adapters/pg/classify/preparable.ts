import { commandOf, nameParts, nodeOf } from './analyse.js';
import { loadSqlParser, type PgNode, parseSql } from './parser.js';

/**
 * Why a statement run in a two-phase-commit branch would make PREPARE TRANSACTION fail or break
 * the branch's atomicity, found in PostgreSQL's parse tree (so whatever the quoting, comments or
 * spelling): transaction control that ends or restarts the branch's transaction (`COMMIT`,
 * `ROLLBACK`, `END`, `ABORT`, `BEGIN`, `PREPARE TRANSACTION`, `COMMIT/ROLLBACK PREPARED`;
 * savepoints stay inside the transaction and are fine), and what PostgreSQL cannot prepare or
 * what would outlive the branch on its pooled connection: temporary tables, `LISTEN`,
 * `UNLISTEN`, `NOTIFY` (and `pg_notify`), `WITH HOLD` cursors and session-level advisory locks.
 * Undefined when there is none, or when the text does not parse (the server refuses it then).
 */
export async function unpreparableReason(sql: string): Promise<string | undefined> {
  await loadSqlParser();
  const parsed = parseSql(sql);
  if (parsed === undefined || !parsed.ok) return undefined;
  for (const { stmt } of parsed.statements) {
    const found = findUnpreparable(stmt);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Transaction statements that stay inside the branch's transaction. */
const NESTED_TRANSACTION_KINDS: ReadonlySet<string> = new Set([
  'TRANS_STMT_SAVEPOINT',
  'TRANS_STMT_RELEASE',
  'TRANS_STMT_ROLLBACK_TO',
]);

const SESSION_ADVISORY_LOCKS: ReadonlySet<string> = new Set([
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
]);

/** `CURSOR_OPT_HOLD` in PostgreSQL's parsenodes.h. */
const CURSOR_OPT_HOLD = 0x20;

function findUnpreparable(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const children: unknown[] = Array.isArray(value) ? value : [];
  if (!Array.isArray(value)) {
    const node = nodeOf(value);
    const fields = node?.fields ?? (value as PgNode);
    if (node !== undefined) {
      const found = unpreparableNode(node.type, node.fields);
      if (found !== undefined) return found;
    }
    if (fields['relpersistence'] === 't') {
      return 'temporary tables';
    }
    children.push(...Object.values(fields));
  }
  for (const child of children) {
    const found = findUnpreparable(child);
    if (found !== undefined) return found;
  }
  return undefined;
}

function unpreparableNode(type: string, fields: PgNode): string | undefined {
  switch (type) {
    case 'TransactionStmt':
      return NESTED_TRANSACTION_KINDS.has(String(fields['kind']))
        ? undefined
        : `transaction control (${commandOf(type, fields).toUpperCase()})`;
    case 'ListenStmt':
    case 'UnlistenStmt':
    case 'NotifyStmt':
      return 'LISTEN/UNLISTEN/NOTIFY';
    case 'DeclareCursorStmt':
      return (Number(fields['options'] ?? 0) & CURSOR_OPT_HOLD) !== 0
        ? 'WITH HOLD cursors'
        : undefined;
    case 'FuncCall': {
      const name = nameParts(fields['funcname'])?.at(-1);
      if (name === 'pg_notify') return 'NOTIFY (pg_notify)';
      return name !== undefined && SESSION_ADVISORY_LOCKS.has(name)
        ? 'session-level advisory locks (use pg_advisory_xact_lock)'
        : undefined;
    }
    default:
      return undefined;
  }
}

import type { PgNode } from './parser.js';

/**
 * What one parsed statement is and what it can call, read off PostgreSQL's parse tree. The
 * catalog decides afterwards whether the calls are safe on a replica.
 *
 * Parse-tree nodes are `{ NodeType: { ...fields } }`; some fields hold a node's fields directly
 * (a set operation's `larg`, a cast's `typeName`). Only the node types in `QUERY_NODES` may
 * appear in a routable query: anything else (a data-modifying statement in a CTE, `TABLESAMPLE`,
 * SQL/JSON constructs, node types of a newer grammar) keeps the statement on the primary.
 */

/** A name as written, resolved by the parser: unquoted names are lower-cased (ASCII only). */
export interface QualifiedName {
  /** The schema when the name is qualified, else undefined (any schema on the search path). */
  readonly schema: string | undefined;
  readonly name: string;
}

export interface FunctionCall extends QualifiedName {
  /** Number of arguments written (named ones included). */
  readonly args: number;
}

export interface StatementFacts {
  /** The statement's kind, lower-case: `'select'`, `'insert'`, `'begin'`, `'commit'`... */
  readonly command: string;
  /** Why the statement's shape alone keeps it on the primary; undefined when routable. */
  readonly refusal: string | undefined;
  /** Functions it calls (to look up in `pg_proc`). */
  readonly calls: readonly FunctionCall[];
  /**
   * Last names of qualified column references (`u.total`): PostgreSQL calls `total(u)` when the
   * row has no such column (functional notation), so a one-argument volatile function of that
   * name must keep the statement on the primary.
   */
  readonly attributes: readonly string[];
  /** Operators it uses (to look up in `pg_operator`), `=` for a simple `CASE`. */
  readonly operators: readonly QualifiedName[];
  /** Types it casts to (an input or cast function runs). */
  readonly casts: readonly QualifiedName[];
  /** `BEGIN`/`START TRANSACTION` whose modes say `READ ONLY`. */
  readonly beginsReadOnlyTransaction: boolean;
}

/** Node types a routable query may contain. */
const QUERY_NODES: ReadonlySet<string> = new Set([
  'SelectStmt',
  'ResTarget',
  'ColumnRef',
  'A_Star',
  'A_Const',
  'ParamRef',
  'String',
  'Integer',
  'Float',
  'Boolean',
  'BitString',
  'List',
  'RangeVar',
  'Alias',
  'JoinExpr',
  'RangeSubselect',
  'RangeFunction',
  'FuncCall',
  'NamedArgExpr',
  'A_Expr',
  'BoolExpr',
  'NullTest',
  'BooleanTest',
  'SubLink',
  'CaseExpr',
  'CaseWhen',
  'CoalesceExpr',
  'MinMaxExpr',
  'RowExpr',
  'A_ArrayExpr',
  'A_Indirection',
  'A_Indices',
  'TypeCast',
  'TypeName',
  'CollateClause',
  'SortBy',
  'WindowDef',
  'GroupingSet',
  'GroupingFunc',
  'SQLValueFunction',
  'WithClause',
  'CommonTableExpr',
  'CTESearchClause',
  'CTECycleClause',
  'ColumnDef',
]);

/** Reasons for node types that write. */
const WRITE_NODES: Readonly<Record<string, string>> = {
  InsertStmt: 'contains INSERT',
  UpdateStmt: 'contains UPDATE',
  DeleteStmt: 'contains DELETE',
  MergeStmt: 'contains MERGE',
};

const LOCK_STRENGTHS: Readonly<Record<string, string>> = {
  LCS_FORUPDATE: 'UPDATE',
  LCS_FORNOKEYUPDATE: 'NO KEY UPDATE',
  LCS_FORSHARE: 'SHARE',
  LCS_FORKEYSHARE: 'KEY SHARE',
};

/** `A_Expr` kinds whose `name` is the operator applied. */
const NAMED_OPERATOR_KINDS: ReadonlySet<string> = new Set([
  'AEXPR_OP',
  'AEXPR_OP_ANY',
  'AEXPR_OP_ALL',
  'AEXPR_DISTINCT',
  'AEXPR_NOT_DISTINCT',
  'AEXPR_NULLIF',
  'AEXPR_IN',
  'AEXPR_LIKE',
  'AEXPR_ILIKE',
  'AEXPR_SIMILAR',
]);

/** `A_Expr` kinds named by a keyword: `BETWEEN` compares with `>=` and `<=`. */
const BETWEEN_KINDS: ReadonlySet<string> = new Set([
  'AEXPR_BETWEEN',
  'AEXPR_NOT_BETWEEN',
  'AEXPR_BETWEEN_SYM',
  'AEXPR_NOT_BETWEEN_SYM',
]);

/**
 * Clauses that compare values without naming an operator: sorting uses the type's `<`/`>`,
 * grouping, `DISTINCT`, set operations and `USING` joins its `=` (and `<` when sorted).
 */
const IMPLICIT_COMPARISONS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['sortClause', ['<', '>']],
  ['orderClause', ['<', '>']],
  ['agg_order', ['<', '>']],
  ['groupClause', ['=', '<']],
  ['distinctClause', ['=', '<']],
  ['partitionClause', ['=']],
  ['usingClause', ['=']],
];

const TRANSACTION_COMMANDS: Readonly<Record<string, string>> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'start',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollback',
  TRANS_STMT_PREPARE: 'prepare',
  TRANS_STMT_COMMIT_PREPARED: 'commit',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback',
};

/** The node type and fields of a `{ NodeType: fields }` node, or undefined. */
export function nodeOf(value: unknown): { type: string; fields: PgNode } | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  const type = keys[0];
  if (keys.length !== 1 || type === undefined || !/^[A-Z]/.test(type)) return undefined;
  const fields = (value as PgNode)[type];
  return fields !== null && typeof fields === 'object'
    ? { type, fields: fields as PgNode }
    : undefined;
}

/** The statement's kind, lower-case (see `StatementFacts.command`). */
export function commandOf(type: string, fields: PgNode): string {
  switch (type) {
    case 'SelectStmt':
      return fields['withClause'] !== undefined
        ? 'with'
        : fields['valuesLists'] !== undefined
          ? 'values'
          : 'select';
    case 'TransactionStmt':
      return TRANSACTION_COMMANDS[String(fields['kind'])] ?? 'transaction';
    case 'VariableSetStmt':
      return String(fields['kind']).startsWith('VAR_RESET') ? 'reset' : 'set';
    case 'VariableShowStmt':
      return 'show';
    case 'ClosePortalStmt':
      return 'close';
    case 'DeclareCursorStmt':
      return 'declare';
    default:
      return type.replace(/Stmt$/, '').toLowerCase();
  }
}

/** The facts of one top-level statement. */
export function analyseStatement(statement: PgNode): StatementFacts {
  const node = nodeOf(statement);
  if (node === undefined) return refused('', 'unrecognised statement');
  const command = commandOf(node.type, node.fields);
  if (node.type === 'ExplainStmt') {
    // EXPLAIN runs its statement only with ANALYZE, but either way it is as safe as the statement.
    const inner = analyseStatement(node.fields['query'] as PgNode);
    const refusal = inner.refusal === undefined ? undefined : `explain: ${inner.refusal}`;
    return { ...inner, command, refusal, beginsReadOnlyTransaction: false };
  }
  if (node.type === 'VariableShowStmt') return { ...refused(command, undefined) };
  if (node.type === 'TransactionStmt') {
    return {
      ...refused(command, `${command} statement`),
      beginsReadOnlyTransaction: beginsReadOnly(node.fields),
    };
  }
  if (node.type !== 'SelectStmt') return refused(command, `${command} statement`);
  const walker = new QueryWalker();
  walker.visit(node.type, node.fields);
  return {
    command,
    refusal: walker.refusal,
    calls: walker.calls,
    attributes: walker.attributes,
    operators: walker.operators,
    casts: walker.casts,
    beginsReadOnlyTransaction: false,
  };
}

function refused(command: string, refusal: string | undefined): StatementFacts {
  return {
    command,
    refusal,
    calls: [],
    attributes: [],
    operators: [],
    casts: [],
    beginsReadOnlyTransaction: false,
  };
}

/** BEGIN/START with `READ ONLY` among its modes (and no `READ WRITE`). */
function beginsReadOnly(fields: PgNode): boolean {
  const kind = fields['kind'];
  if (kind !== 'TRANS_STMT_BEGIN' && kind !== 'TRANS_STMT_START') return false;
  const modes = Array.isArray(fields['options']) ? fields['options'] : [];
  let readOnly = false;
  for (const mode of modes) {
    const option = nodeOf(mode);
    if (option?.fields['defname'] !== 'transaction_read_only') continue;
    const value = nodeOf(option.fields['arg'])?.fields['ival'] as { ival?: unknown } | undefined;
    // libpg_query leaves a zero out of its JSON: `READ WRITE` is `{ ival: {} }`.
    if (value?.ival !== 1) return false;
    readOnly = true;
  }
  return readOnly;
}

/** The parts of a name list (`[{ String: { sval } }, ...]`), or undefined if not all strings. */
export function nameParts(list: unknown): string[] | undefined {
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const parts: string[] = [];
  for (const item of list) {
    const node = nodeOf(item);
    const sval = node?.type === 'String' ? node.fields['sval'] : undefined;
    if (typeof sval !== 'string') return undefined;
    parts.push(sval);
  }
  return parts;
}

/** `schema.name` or `name`; a three-part (database-qualified) name is not resolvable here. */
function qualified(parts: string[] | undefined): QualifiedName | undefined {
  if (parts === undefined || parts.length > 2) return undefined;
  return parts.length === 2
    ? { schema: parts[0], name: parts[1]! }
    : { schema: undefined, name: parts[0]! };
}

/** Walks a query, collecting calls and stopping at the first reason to refuse it. */
class QueryWalker {
  refusal: string | undefined;
  readonly calls: FunctionCall[] = [];
  readonly attributes: string[] = [];
  readonly operators: QualifiedName[] = [];
  readonly casts: QualifiedName[] = [];

  walk(value: unknown): void {
    if (this.refusal !== undefined || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (const item of value) this.walk(item);
      return;
    }
    const node = nodeOf(value);
    if (node === undefined) this.fields(value as PgNode);
    else this.visit(node.type, node.fields);
  }

  visit(type: string, fields: PgNode): void {
    if (!QUERY_NODES.has(type)) {
      this.refusal = WRITE_NODES[type] ?? `uses ${type}`;
      return;
    }
    if (type === 'FuncCall') {
      const name = qualified(nameParts(fields['funcname']));
      if (name === undefined) {
        this.refusal = 'calls a function by an unresolvable name';
        return;
      }
      const args = Array.isArray(fields['args']) ? fields['args'].length : 0;
      this.calls.push({ ...name, args });
    } else if (type === 'A_Expr') {
      const kind = String(fields['kind']);
      if (BETWEEN_KINDS.has(kind)) {
        this.operator(['>=']);
        this.operator(['<=']);
      } else if (NAMED_OPERATOR_KINDS.has(kind)) {
        this.operator(nameParts(fields['name']));
      } else {
        this.refusal = `uses ${kind}`;
      }
    } else if (type === 'TypeCast') {
      const target = qualified(nameParts((fields['typeName'] as PgNode | undefined)?.['names']));
      if (target === undefined) {
        this.refusal = 'casts to an unresolvable type';
        return;
      }
      this.casts.push(target);
    } else if (type === 'ColumnRef' || type === 'A_Indirection') {
      // `u.total`, `(u).total`: a column, or the function total(u).
      const parts = type === 'ColumnRef' ? fields['fields'] : fields['indirection'];
      const last = Array.isArray(parts) ? nodeOf(parts.at(-1)) : undefined;
      const qualifiedRef = type === 'A_Indirection' || (Array.isArray(parts) && parts.length > 1);
      const name = last?.type === 'String' ? last.fields['sval'] : undefined;
      if (qualifiedRef && typeof name === 'string') this.attributes.push(name);
    } else if (type === 'CaseExpr' && fields['arg'] !== undefined) {
      this.operator(['=']); // CASE x WHEN y compares with x = y
    }
    this.fields(fields);
  }

  readonly #seenOperators = new Set<string>();

  operator(parts: string[] | undefined): void {
    const name = qualified(parts);
    if (name === undefined) {
      this.refusal = 'uses an operator by an unresolvable name';
      return;
    }
    const key = `${name.schema ?? ''}.${name.name}`;
    if (this.#seenOperators.has(key)) return;
    this.#seenOperators.add(key);
    this.operators.push(name);
  }

  fields(fields: PgNode): void {
    if (fields['intoClause'] !== undefined) {
      this.refusal = 'SELECT ... INTO';
      return;
    }
    const locks = fields['lockingClause'];
    if (Array.isArray(locks) && locks.length > 0) {
      const strength = String(nodeOf(locks[0])?.fields['strength']);
      this.refusal = `locking clause FOR ${LOCK_STRENGTHS[strength] ?? strength}`;
      return;
    }
    // `ORDER BY x USING <` and `x = ANY (SELECT ...)` name operators in these fields.
    if (fields['useOp'] !== undefined) this.operator(nameParts(fields['useOp']));
    if (fields['operName'] !== undefined) this.operator(nameParts(fields['operName']));
    for (const [clause, operators] of IMPLICIT_COMPARISONS) {
      if (fields[clause] !== undefined) for (const operator of operators) this.operator([operator]);
    }
    const setOperation = typeof fields['op'] === 'string' && fields['op'] !== 'SETOP_NONE';
    if (setOperation || fields['isNatural'] === true || fields['agg_distinct'] === true) {
      this.operator(['=']);
      this.operator(['<']);
    }
    for (const child of Object.values(fields)) this.walk(child);
  }
}

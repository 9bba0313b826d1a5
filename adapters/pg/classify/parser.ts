/**
 * PostgreSQL's own parser, as WebAssembly: the `libpg-query` package (libpg_query, the parser
 * extracted from the PostgreSQL source, compiled to WASM). Chosen over the alternatives because:
 * - it is the real grammar and lexer (comments ended by a carriage return, nested comments,
 *   dollar quotes, `U&""` identifiers, ASCII-only down-casing of unquoted names) rather than a
 *   re-implementation;
 * - WebAssembly: no native build, no prebuilt binary to download, one 1.1 MB `.wasm` file and a
 *   single dependency (`@pgsql/types`, types only); `@pgsql/parser` and `@libpg-query/parser`
 *   ship the same parser as several versions at once plus a protobuf runtime;
 * - a synchronous `parseSync` once loaded, which the pool needs (`classify(text)` is sync);
 *   loading is asynchronous (about 15 ms here), started by the first classifier;
 * - the PostgreSQL 17 grammar (the `pg17` line): the newest released grammar, a superset of what
 *   PostgreSQL 14 to 17 accept in practice. A text it cannot parse goes to the primary; syntax
 *   newer than the server's fails on the server anyway; the classifier's allow-list of
 *   parse-tree nodes keeps newer constructs (SQL/JSON functions...) on the primary.
 */

type LibPgQuery = typeof import('libpg-query');

/** A parse-tree node as libpg_query's JSON has it: `{ NodeType: { ...fields } }`. */
export type PgNode = Record<string, unknown>;

/** One statement of a parsed text. */
export interface ParsedStatement {
  readonly stmt: PgNode;
}

/** The parser's answer: the statements, or why the text does not parse. */
export type ParseResult =
  | { readonly ok: true; readonly statements: readonly ParsedStatement[] }
  | { readonly ok: false; readonly reason: string };

let parser: LibPgQuery | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads the WebAssembly parser once per process; resolves when `parseSql` can be used. A failed
 * load is retried by the next call (the classifier meanwhile sends everything to the primary).
 */
export function loadSqlParser(): Promise<void> {
  loading ??= import('libpg-query')
    .then(async (module) => {
      await module.loadModule();
      parser = module;
    })
    .catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
  return loading;
}

/** True once `loadSqlParser()` has finished. */
export function sqlParserReady(): boolean {
  return parser !== undefined;
}

/** Parses `sql` synchronously; `undefined` while the parser is not loaded. Never throws. */
export function parseSql(sql: string): ParseResult | undefined {
  if (parser === undefined) return undefined;
  // libpg_query refuses an empty text instead of returning no statement.
  if (sql.trim() === '') return { ok: true, statements: [] };
  let tree: unknown;
  try {
    tree = parser.parseSync(sql);
  } catch (error) {
    // The parser's message names a token of the text: keep only where it failed.
    const details = (error as { sqlDetails?: { cursorPosition?: unknown } }).sqlDetails;
    const at = typeof details?.cursorPosition === 'number' ? ` at ${details.cursorPosition}` : '';
    return { ok: false, reason: `syntax error${at}` };
  }
  const statements = (tree as { stmts?: unknown }).stmts;
  return { ok: true, statements: Array.isArray(statements) ? statements : [] };
}

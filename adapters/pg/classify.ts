import { configError, optionsObject } from '../../src/errors.js';

/**
 * Decides whether one SQL text is *provably* read-only, so that the replicated pool may send it to
 * a replica. Anything the classifier cannot prove read-only goes to the primary: a wrong "not
 * read-only" costs some primary load, a wrong "read-only" would send a write to a replica (which
 * refuses it) or read stale data inside a transaction.
 *
 * Read-only means one statement that is a plain `SELECT`, `VALUES`, `TABLE`, `SHOW`, or a `WITH`
 * query whose parts are all plain queries, or an `EXPLAIN` of such a statement. It is not
 * read-only when anywhere in it there is `INSERT`/`UPDATE`/`DELETE`/`MERGE`/`TRUNCATE` (data-
 * modifying CTEs), a locking clause (`FOR UPDATE`/`SHARE`/`NO KEY UPDATE`/`KEY SHARE`), `INTO`
 * (`SELECT ... INTO` creates a table), or a call of a function not on the allow-list (`nextval`,
 * `setval`, `pg_advisory_lock`, user functions...). Views and user-defined operators that write
 * are beyond what text can show: the pool retries such a statement on the primary when the
 * replica refuses it as a write in a read-only transaction.
 */

/**
 * Functions known to change nothing in the database, callable from routed reads. Deliberately
 * modest: aggregates, window functions and common scalar, text, date, JSON and array functions.
 * Extend it with the `readOnlyFunctions` option (lower-case names) for your own functions.
 */
export const DEFAULT_READ_ONLY_FUNCTIONS: readonly string[] = [
  // aggregates
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'array_agg',
  'string_agg',
  'bool_and',
  'bool_or',
  'every',
  'json_agg',
  'jsonb_agg',
  'json_object_agg',
  'jsonb_object_agg',
  // window functions
  'row_number',
  'rank',
  'dense_rank',
  'percent_rank',
  'cume_dist',
  'ntile',
  'lag',
  'lead',
  'first_value',
  'last_value',
  'nth_value',
  // conditional
  'coalesce',
  'nullif',
  'greatest',
  'least',
  // text
  'lower',
  'upper',
  'length',
  'char_length',
  'octet_length',
  'substring',
  'substr',
  'position',
  'strpos',
  'trim',
  'btrim',
  'ltrim',
  'rtrim',
  'replace',
  'concat',
  'concat_ws',
  'left',
  'right',
  'lpad',
  'rpad',
  'split_part',
  'initcap',
  'reverse',
  'format',
  'md5',
  // numbers
  'abs',
  'ceil',
  'ceiling',
  'floor',
  'round',
  'trunc',
  'mod',
  'power',
  'sqrt',
  'sign',
  // date and time
  'now',
  'clock_timestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'date_trunc',
  'date_part',
  'extract',
  'age',
  'make_date',
  'make_interval',
  'to_char',
  'to_date',
  'to_timestamp',
  'to_number',
  // JSON
  'to_json',
  'to_jsonb',
  'row_to_json',
  'json_build_object',
  'jsonb_build_object',
  'json_build_array',
  'jsonb_build_array',
  'jsonb_set',
  'json_extract_path_text',
  'jsonb_extract_path',
  'jsonb_extract_path_text',
  'jsonb_array_length',
  'jsonb_array_elements',
  'jsonb_array_elements_text',
  'jsonb_each',
  'jsonb_typeof',
  // arrays and sets
  'array_length',
  'array_position',
  'array_append',
  'array_remove',
  'cardinality',
  'unnest',
  'generate_series',
  // misc
  'gen_random_uuid',
];

/** The verdict on one SQL text. */
export interface SqlClassification {
  /** True only when the text is provably one read-only statement. */
  readonly readOnly: boolean;
  /** Why, for route events and debugging, e.g. `'select'` or `'calls nextval()'`. No SQL text. */
  readonly reason: string;
  /** The statement's first keyword, lower-case (`'select'`, `'commit'`...), `''` when none. */
  readonly command: string;
  /**
   * False when the statement cannot change data: read-only statements and transaction or session
   * control (`BEGIN`, `ROLLBACK`, `SAVEPOINT`, `SET`...). Those need no write floor afterwards.
   */
  readonly mayWrite: boolean;
  /** True for `BEGIN` / `START TRANSACTION` with `READ ONLY` among its modes. */
  readonly beginsReadOnlyTransaction?: boolean;
}

export interface SqlClassifierOptions {
  /** Extra function names (lower-case, unqualified) to treat as read-only. Default: none. */
  readOnlyFunctions?: Iterable<string>;
  /** Verdicts kept in the LRU cache, keyed by SQL text (0 disables it). Default: 1000. */
  cacheSize?: number;
  /** Texts longer than this many characters are classified but not cached. Default: 10000. */
  maxCachedLength?: number;
}

/** Classifies SQL texts, caching verdicts per text in a bounded LRU (queries repeat). */
export class SqlClassifier {
  readonly #functions: ReadonlySet<string>;
  readonly #cacheSize: number;
  readonly #maxCachedLength: number;
  // A Map iterates in insertion order: re-inserting on a hit makes the first key the LRU one.
  readonly #cache = new Map<string, SqlClassification>();

  constructor(options: SqlClassifierOptions = {}) {
    optionsObject(options, 'SqlClassifier');
    const cacheSize = options.cacheSize ?? 1000;
    if (!Number.isInteger(cacheSize) || cacheSize < 0) {
      throw configError('SqlClassifier: cacheSize must be a non-negative integer', { cacheSize });
    }
    const maxCachedLength = options.maxCachedLength ?? 10_000;
    if (!Number.isInteger(maxCachedLength) || maxCachedLength < 0) {
      throw configError('SqlClassifier: maxCachedLength must be a non-negative integer', {
        maxCachedLength,
      });
    }
    const functions = new Set(DEFAULT_READ_ONLY_FUNCTIONS);
    const extraFunctions = options.readOnlyFunctions ?? [];
    if (!Array.isArray(extraFunctions)) {
      throw configError('SqlClassifier: readOnlyFunctions must be an array of names');
    }
    for (const name of extraFunctions) {
      if (typeof name !== 'string' || name === '') {
        throw configError('SqlClassifier: readOnlyFunctions must be non-empty strings');
      }
      functions.add(name.toLowerCase());
    }
    this.#functions = functions;
    this.#cacheSize = cacheSize;
    this.#maxCachedLength = maxCachedLength;
  }

  /** The verdict for `sql`; never throws (anything unexpected is "not read-only"). */
  classify(sql: string): SqlClassification {
    const cached = this.#cache.get(sql);
    if (cached !== undefined) {
      this.#cache.delete(sql);
      this.#cache.set(sql, cached);
      return cached;
    }
    const verdict = this.#classifyUncached(sql);
    if (this.#cacheSize > 0 && sql.length <= this.#maxCachedLength) {
      if (this.#cache.size >= this.#cacheSize) {
        const oldest = this.#cache.keys().next();
        if (oldest.done !== true) this.#cache.delete(oldest.value);
      }
      this.#cache.set(sql, verdict);
    }
    return verdict;
  }

  /** Number of cached verdicts (for tests and metrics). */
  get cacheLength(): number {
    return this.#cache.size;
  }

  #classifyUncached(sql: string): SqlClassification {
    if (typeof sql !== 'string') return verdict(false, 'not a SQL text', '');
    let tokens: Token[];
    try {
      tokens = tokenize(sql);
    } catch (error) {
      const reason = error instanceof LexError ? error.message : 'unparseable';
      return verdict(false, reason, '');
    }
    while (tokens.length > 0 && isPunct(tokens[tokens.length - 1], ';')) tokens.pop();
    if (tokens.some((token) => isPunct(token, ';'))) {
      return verdict(false, 'multiple statements', firstWord(tokens));
    }
    return classifyStatement(tokens, this.#functions);
  }
}

let defaultClassifier: SqlClassifier | undefined;

/** Classifies `sql` with a shared classifier that uses the default allow-list and cache. */
export function classifySql(sql: string): SqlClassification {
  defaultClassifier ??= new SqlClassifier();
  return defaultClassifier.classify(sql);
}

function verdict(readOnly: boolean, reason: string, command: string): SqlClassification {
  return { readOnly, reason, command, mayWrite: !readOnly && !NO_WRITE_COMMANDS.has(command) };
}

/** Statements that must run on the primary's connection but change no data. */
const NO_WRITE_COMMANDS: ReadonlySet<string> = new Set([
  'begin',
  'start',
  'savepoint',
  'release',
  'set',
  'reset',
  'show',
  'discard',
  'deallocate',
  'listen',
  'unlisten',
  'close',
]);

/** First keywords of statements that may be read-only, depending on what follows. */
const QUERY_COMMANDS: ReadonlySet<string> = new Set(['select', 'values', 'table', 'with']);

/** Keywords that make a statement write wherever they appear (data-modifying CTEs included). */
const WRITE_KEYWORDS: ReadonlySet<string> = new Set([
  'insert',
  'update',
  'delete',
  'merge',
  'truncate',
]);

/**
 * Keywords that may stand before `(` without being a function call: `IN (...)`, `OVER (...)`,
 * `AS (...)`, `character VARYING(10)`...
 */
const NON_CALL_KEYWORDS: ReadonlySet<string> = new Set([
  'all',
  'and',
  'any',
  'array',
  'as',
  'between',
  'by',
  'case',
  'cast',
  'cube',
  'distinct',
  'else',
  'escape',
  'except',
  'exists',
  'fetch',
  'filter',
  'from',
  'having',
  'ilike',
  'in',
  'intersect',
  'is',
  'join',
  'lateral',
  'like',
  'limit',
  'materialized',
  'not',
  'offset',
  'on',
  'only',
  'or',
  'order',
  'over',
  'overlaps',
  'recursive',
  'rollup',
  'row',
  'select',
  'sets',
  'similar',
  'some',
  'table',
  'then',
  'union',
  'using',
  'values',
  'varying',
  'when',
  'where',
  'window',
  'with',
  'within',
]);

function classifyStatement(tokens: Token[], functions: ReadonlySet<string>): SqlClassification {
  let start = 0;
  while (isPunct(tokens[start], '(')) start++;
  const first = tokens[start];
  if (first === undefined) return verdict(false, 'empty statement', '');
  if (first.kind !== 'word') return verdict(false, 'unrecognised statement', '');
  const command = first.text;
  if (command === 'show' && start === 0) return verdict(true, 'show', command);
  if (
    start === 0 &&
    (command === 'begin' || (command === 'start' && isWord(tokens[1], 'transaction'))) &&
    tokens.some((token, i) => isWord(token, 'read') && isWord(tokens[i + 1], 'only'))
  ) {
    return { ...verdict(false, 'begin read only', command), beginsReadOnlyTransaction: true };
  }
  if (command === 'explain' && start === 0) {
    const inner = classifyStatement(tokens.slice(skipExplainOptions(tokens, 1)), functions);
    return {
      readOnly: inner.readOnly,
      reason: `explain: ${inner.reason}`,
      command,
      mayWrite: inner.mayWrite,
    };
  }
  if (command === 'rollback' || command === 'abort') {
    // ROLLBACK PREPARED finishes a prepared transaction: it changes nothing either.
    return { readOnly: false, reason: `${command} statement`, command, mayWrite: false };
  }
  if (!QUERY_COMMANDS.has(command)) return verdict(false, `${command} statement`, command);

  for (let i = start; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind === 'word') {
      const lock = lockingClause(tokens, i);
      if (lock !== undefined) return verdict(false, `locking clause FOR ${lock}`, command);
      if (WRITE_KEYWORDS.has(token.text)) {
        return verdict(false, `contains ${token.text.toUpperCase()}`, command);
      }
      if (token.text === 'into') return verdict(false, 'SELECT ... INTO', command);
    }
    if (isPunct(tokens[i + 1], '(')) {
      const refused = refusedCall(tokens, i, functions);
      if (refused !== undefined) return verdict(false, refused, command);
    }
  }
  return verdict(true, command, command);
}

/** Index after EXPLAIN's options: `EXPLAIN (ANALYZE, ...)` or `EXPLAIN ANALYZE VERBOSE`. */
function skipExplainOptions(tokens: Token[], index: number): number {
  if (isPunct(tokens[index], '(')) return matchingParen(tokens, index) + 1;
  let i = index;
  while (
    isWord(tokens[i], 'analyze') ||
    isWord(tokens[i], 'analyse') ||
    isWord(tokens[i], 'verbose')
  )
    i++;
  return i;
}

/** `'UPDATE'`, `'SHARE'`, ... when a locking clause starts at `tokens[i]` (`FOR ...`). */
function lockingClause(tokens: Token[], i: number): string | undefined {
  if (!isWord(tokens[i], 'for')) return undefined;
  if (isWord(tokens[i + 1], 'update')) return 'UPDATE';
  if (isWord(tokens[i + 1], 'share')) return 'SHARE';
  if (isWord(tokens[i + 1], 'no') && isWord(tokens[i + 2], 'key')) return 'NO KEY UPDATE';
  if (isWord(tokens[i + 1], 'key') && isWord(tokens[i + 2], 'share')) return 'KEY SHARE';
  return undefined;
}

/**
 * For a name followed by `(` at `tokens[i]`: undefined when it is no call or a call of an
 * allowed function, else the reason for refusing it.
 */
function refusedCall(
  tokens: Token[],
  i: number,
  functions: ReadonlySet<string>,
): string | undefined {
  const token = tokens[i];
  const name = nameOf(token);
  if (name === undefined) return undefined;
  const before = tokens[i - 1];
  if (token?.kind === 'word' && NON_CALL_KEYWORDS.has(name)) return undefined;
  // `::numeric(10,2)` and `AS varchar(20)` are types; `AS t(a, b)` and `fn() t(a)` are aliases.
  if (isPunct(before, '::') || isWord(before, 'as') || isPunct(before, ')')) return undefined;
  // `WITH t(a, b) AS (...)`: a CTE's column list, not a call.
  const after = matchingParen(tokens, i + 1) + 1;
  if (
    isWord(tokens[after], 'as') &&
    (isPunct(tokens[after + 1], '(') ||
      isWord(tokens[after + 1], 'materialized') ||
      isWord(tokens[after + 1], 'not'))
  ) {
    return undefined;
  }
  if (isPunct(before, '.')) {
    const schema = nameOf(tokens[i - 2]) ?? '?';
    if (schema !== 'pg_catalog') return `calls ${schema}.${name}()`;
  }
  return functions.has(name) ? undefined : `calls ${name}()`;
}

/** Index of the `)` closing the `(` at `open`, or the last index when it is never closed. */
function matchingParen(tokens: Token[], open: number): number {
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (isPunct(tokens[i], '(')) depth++;
    else if (isPunct(tokens[i], ')') && --depth === 0) return i;
  }
  return tokens.length - 1;
}

/** The name a word or quoted identifier stands for. */
function nameOf(token: Token | undefined): string | undefined {
  return token?.kind === 'word' || token?.kind === 'ident' ? token.text : undefined;
}

function firstWord(tokens: Token[]): string {
  const first = tokens.find((token) => !isPunct(token, '('));
  return first?.kind === 'word' ? first.text : '';
}

// ---------------------------------------------------------------------------------------------
// Tokenizer: just enough of PostgreSQL's lexer to never mistake a comment, a string or a quoted
// identifier for a keyword. Words come out lower-cased; string and number contents are dropped.

type Token =
  | { readonly kind: 'word'; readonly text: string }
  | { readonly kind: 'ident'; readonly text: string }
  | { readonly kind: 'punct'; readonly text: string }
  | { readonly kind: 'literal' };

class LexError extends Error {}

const LITERAL: Token = { kind: 'literal' };

function isPunct(token: Token | undefined, text: string): boolean {
  return token?.kind === 'punct' && token.text === text;
}

function isWord(token: Token | undefined, text: string): boolean {
  return token?.kind === 'word' && token.text === text;
}

function isIdentStart(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || code === 95 || code >= 0x80;
}

function isIdentPart(code: number): boolean {
  return isIdentStart(code) || (code >= 48 && code <= 57) || code === 36;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i]!;
    const code = sql.charCodeAt(i);
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v') {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      i = skipBlockComment(sql, i);
    } else if (c === "'") {
      i = skipQuoted(sql, i, "'", false);
      tokens.push(LITERAL);
    } else if (c === '"') {
      const end = skipQuoted(sql, i, '"', false);
      tokens.push({ kind: 'ident', text: sql.slice(i + 1, end - 1).replaceAll('""', '"') });
      i = end;
    } else if (c === '$') {
      if (isDigit(sql.charCodeAt(i + 1))) {
        i++;
        while (isDigit(sql.charCodeAt(i))) i++;
        tokens.push(LITERAL);
      } else {
        i = skipDollarQuoted(sql, i);
        tokens.push(LITERAL);
      }
    } else if (isIdentStart(code)) {
      let end = i + 1;
      while (end < n && isIdentPart(sql.charCodeAt(end))) end++;
      const word = sql.slice(i, end).toLowerCase();
      if (sql[end] === "'" && (word === 'e' || word === 'b' || word === 'x' || word === 'n')) {
        i = skipQuoted(sql, end, "'", word === 'e');
        tokens.push(LITERAL);
      } else if (
        word === 'u' &&
        sql[end] === '&' &&
        (sql[end + 1] === "'" || sql[end + 1] === '"')
      ) {
        const quote = sql[end + 1]!;
        const close = skipQuoted(sql, end + 1, quote, false);
        tokens.push(
          quote === "'" ? LITERAL : { kind: 'ident', text: sql.slice(end + 2, close - 1) },
        );
        i = close;
      } else {
        tokens.push({ kind: 'word', text: word });
        i = end;
      }
    } else if (isDigit(code) || (c === '.' && isDigit(sql.charCodeAt(i + 1)))) {
      i++;
      while (i < n && (isIdentPart(sql.charCodeAt(i)) || sql[i] === '.')) i++;
      tokens.push(LITERAL);
    } else if (c === ':' && sql[i + 1] === ':') {
      tokens.push({ kind: 'punct', text: '::' });
      i += 2;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

/** End of a `/* ... *\/` comment starting at `start`; PostgreSQL's block comments nest. */
function skipBlockComment(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      i += 2;
      if (--depth === 0) return i;
    } else {
      i++;
    }
  }
  throw new LexError('unterminated comment');
}

/**
 * End (exclusive) of a string or quoted identifier opened by `quote` at `start`. A doubled quote
 * stands for one; with `backslashEscapes` (E'' strings) a backslash escapes the next character.
 */
function skipQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') {
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  throw new LexError(quote === '"' ? 'unterminated quoted identifier' : 'unterminated string');
}

/** End of a dollar-quoted string `$tag$ ... $tag$` starting at `start`. */
function skipDollarQuoted(sql: string, start: number): number {
  let i = start + 1;
  if (i < sql.length && isIdentStart(sql.charCodeAt(i))) {
    i++;
    while (i < sql.length && isIdentPart(sql.charCodeAt(i)) && sql[i] !== '$') i++;
  }
  if (sql[i] !== '$') throw new LexError('stray $');
  const delimiter = sql.slice(start, i + 1);
  const end = sql.indexOf(delimiter, i + 1);
  if (end === -1) throw new LexError('unterminated dollar-quoted string');
  return end + delimiter.length;
}

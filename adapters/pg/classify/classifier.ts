import { configError, knownOptions } from '../../../src/adapter-kit.js';
import { analyseStatement, type QualifiedName, type StatementFacts } from './analyse.js';
import { CATALOG_SQL, Catalog, type CatalogQuery, PRIMARY_ONLY_FUNCTIONS } from './catalog.js';
import { remember } from './lru.js';
import { loadSqlParser, parseSql } from './parser.js';

/** The verdict on one SQL text. */
export interface SqlClassification {
  /** True only when the text is provably one read-only statement. */
  readonly readOnly: boolean;
  /** Why, for route events and debugging, e.g. `'select'` or `'calls nextval()'`. No SQL text. */
  readonly reason: string;
  /** The statement's kind, lower-case (`'select'`, `'commit'`...); the first one's when several. */
  readonly command: string;
  /**
   * False when the text cannot change data: read-only statements and transaction or session
   * control (`BEGIN`, `ROLLBACK`, `SAVEPOINT`, `SET`...). True for any text of several
   * statements, and whenever the classifier cannot tell.
   */
  readonly mayWrite: boolean;
  /** True for one `BEGIN`/`START TRANSACTION` whose modes include `READ ONLY`. */
  readonly beginsReadOnlyTransaction: boolean;
}

export interface SqlClassifierOptions {
  /**
   * Extra function names (unqualified; upper-case ASCII letters are lowered as PostgreSQL lowers
   * unquoted names) to treat as read-only whatever the catalog says. Default: none.
   */
  readOnlyFunctions?: Iterable<string>;
  /** Verdicts kept in the LRU cache, keyed by SQL text (0 disables it). Default: 1000. */
  cacheSize?: number;
  /** Texts longer than this many characters are classified but not cached. Default: 10000. */
  maxCachedLength?: number;
  /**
   * Age (ms) after which the next classification reloads the catalog in the background, to see
   * functions created, replaced or altered since. Default: 60000.
   */
  catalogRefreshMs?: number;
}

/** Statements that must run on the primary's connection but change no data. */
const NO_WRITE_COMMANDS: ReadonlySet<string> = new Set([
  'begin',
  'start',
  'savepoint',
  'release',
  'rollback',
  'set',
  'reset',
  'show',
  'discard',
  'deallocate',
  'listen',
  'unlisten',
  'close',
]);

/** A catalog miss reloads the catalog at most this often. */
const MISS_RELOAD_INTERVAL_MS = 1000;
/** How many texts refused by a replica are remembered (least recently refused forgotten). */
const PRIMARY_ONLY_LIMIT = 1000;

/** A verdict, and whether it may be cached (false while the parser or catalog is missing). */
interface Judged {
  readonly verdict: SqlClassification;
  readonly final: boolean;
}

/**
 * Classifies SQL texts with PostgreSQL's own parser and the cluster's catalog, caching verdicts
 * per text in a bounded LRU (queries repeat).
 *
 * A text may go to a replica only when it is one read-only statement (`SELECT`, `VALUES`,
 * `TABLE`, `WITH` of such queries, `SHOW`, `EXPLAIN` of one) with no `INTO`, no locking clause
 * and no data-modifying CTE, whose every function, operator and cast is non-volatile in the
 * cluster's `pg_proc`/`pg_operator` (every overload of that name and argument count counts) and
 * not in `PRIMARY_ONLY_FUNCTIONS`. Anything unresolvable, unparseable, or judged before the
 * parser (WebAssembly, loaded at the first text or `ready()`) or the catalog (`useCatalog`) is
 * ready goes to the primary.
 */
export class SqlClassifier {
  readonly #extraFunctions: ReadonlySet<string>;
  readonly #cacheSize: number;
  readonly #maxCachedLength: number;
  readonly #catalogRefreshMs: number;
  // A Map iterates in insertion order: re-inserting on a hit makes the first key the LRU one.
  readonly #cache = new Map<string, SqlClassification>();
  /** Texts a replica refused as writes (a view or rule that writes), kept like the cache. */
  readonly #primaryOnly = new Map<string, true>();
  #query: CatalogQuery | undefined;
  #catalog: Catalog | undefined;
  #loading: Promise<void> | undefined;
  #loadStartedAt = Number.NEGATIVE_INFINITY;
  #reloadAt = Number.POSITIVE_INFINITY;

  constructor(options: SqlClassifierOptions = {}) {
    knownOptions(options, 'SqlClassifier', [
      'readOnlyFunctions',
      'cacheSize',
      'maxCachedLength',
      'catalogRefreshMs',
    ]);
    this.#cacheSize = nonNegativeInteger(options.cacheSize ?? 1000, 'cacheSize');
    this.#maxCachedLength = nonNegativeInteger(
      options.maxCachedLength ?? 10_000,
      'maxCachedLength',
    );
    this.#catalogRefreshMs = nonNegativeInteger(
      options.catalogRefreshMs ?? 60_000,
      'catalogRefreshMs',
    );
    const extraFunctions = options.readOnlyFunctions ?? [];
    if (!Array.isArray(extraFunctions)) {
      throw configError('SqlClassifier: readOnlyFunctions must be an array of names');
    }
    const functions = new Set<string>();
    for (const name of extraFunctions) {
      if (typeof name !== 'string' || name === '') {
        throw configError('SqlClassifier: readOnlyFunctions must be non-empty strings');
      }
      functions.add(asciiLowerCase(name));
    }
    this.#extraFunctions = functions;
  }

  /**
   * Loads the cluster's catalog with `query` (e.g. `(sql) => primaryPool.query(sql)`) at the
   * first `classify()` (a pool opens no connection before it is used; until the catalog is
   * there, calls go to the primary), again on a miss (an unknown function or operator, at most
   * once a second) and once it is older than `catalogRefreshMs`. Replaces any earlier loader.
   */
  useCatalog(query: CatalogQuery): void {
    if (typeof query !== 'function')
      throw configError('SqlClassifier: useCatalog needs a function');
    this.#query = query;
    this.#reloadAt = Number.NEGATIVE_INFINITY;
  }

  /**
   * Resolves once the parser is loaded and, with a catalog loader, the catalog too; rejects
   * with the loader's error when that load failed (classification then keeps going to the
   * primary and retries the load later).
   */
  async ready(): Promise<void> {
    await loadSqlParser();
    if (this.#query !== undefined && this.#catalog === undefined) {
      if (this.#loading === undefined) this.#reload();
      await this.#loading;
    }
  }

  /**
   * Remembers `sql` as primary-only: a replica refused it as a write in a read-only transaction
   * (SQLSTATE 25006), which the text could not show (a view with a rule that writes).
   */
  notReadOnly(sql: string): void {
    if (typeof sql !== 'string') return;
    remember(this.#primaryOnly, sql, true, PRIMARY_ONLY_LIMIT);
    const cached = this.#cache.get(sql);
    if (cached !== undefined) this.#cache.set(sql, primaryOnly(cached));
  }

  /** The verdict for `sql`; never throws (anything unexpected is "not read-only"). */
  classify(sql: string): SqlClassification {
    if (Date.now() >= this.#reloadAt) this.#reload();
    const cached = this.#cache.get(sql);
    if (cached !== undefined) {
      this.#cache.delete(sql);
      this.#cache.set(sql, cached);
      return cached;
    }
    if (typeof sql !== 'string') return unknownText('not a SQL text');
    const { verdict, final } = this.#classifyUncached(sql);
    const result = this.#primaryOnly.has(sql) ? primaryOnly(verdict) : verdict;
    if (final && this.#cacheSize > 0 && sql.length <= this.#maxCachedLength) {
      remember(this.#cache, sql, result, this.#cacheSize);
    }
    return result;
  }

  /** Number of cached verdicts (for tests and metrics). */
  get cacheLength(): number {
    return this.#cache.size;
  }

  #classifyUncached(sql: string): Judged {
    // The parser reads a C string: a NUL would hide whatever follows it.
    if (sql.includes('\0'))
      return { verdict: unknownText('contains a NUL character'), final: true };
    const parsed = parseSql(sql);
    if (parsed === undefined) {
      // Loaded at the first text (or `ready()`), not at construction: a pool used only outside
      // sessions never classifies, and instantiating the parser would delay its first queries.
      // Until it has loaded, every text goes to the primary (and nothing is cached).
      loadSqlParser().catch(() => {});
      return { verdict: unknownText('parser not ready'), final: false };
    }
    if (!parsed.ok) return { verdict: unknownText(parsed.reason), final: true };
    const [first, ...rest] = parsed.statements;
    if (first === undefined) return { verdict: unknownText('empty statement'), final: true };
    const facts = analyseStatement(first.stmt);
    if (rest.length > 0) {
      // Whatever the first statement is, a later one may write: the floors must move.
      return { verdict: unknownText('multiple statements', facts.command), final: true };
    }
    const problem = facts.refusal === undefined ? this.#callProblem(facts) : undefined;
    const reason = facts.refusal ?? problem?.reason;
    return {
      verdict: {
        readOnly: reason === undefined,
        reason: reason ?? facts.command,
        command: facts.command,
        mayWrite: reason !== undefined && !NO_WRITE_COMMANDS.has(facts.command),
        beginsReadOnlyTransaction: facts.beginsReadOnlyTransaction,
      },
      final: problem?.final ?? true,
    };
  }

  /** Why the statement's calls keep it on the primary, or undefined when none does. */
  #callProblem(facts: StatementFacts): { reason: string; final: boolean } | undefined {
    for (const call of facts.calls) {
      const name = display(call);
      if (PRIMARY_ONLY_FUNCTIONS.has(call.name)) return { reason: `calls ${name}()`, final: true };
      if (this.#extraFunctions.has(call.name)) continue;
      if (this.#catalog === undefined) return { reason: 'catalog not loaded', final: false };
      const problem = this.#catalog.functionProblem(call);
      if (problem === 'volatile') return { reason: `calls ${name}()`, final: true };
      if (problem === 'unknown') {
        this.#missed();
        return { reason: `calls unknown function ${name}()`, final: true };
      }
    }
    for (const name of facts.attributes) {
      if (this.#extraFunctions.has(name)) continue;
      if (this.#catalog === undefined) return { reason: 'catalog not loaded', final: false };
      // Most are columns: only a volatile one-argument function of that name matters.
      if (this.#catalog.functionProblem({ schema: undefined, name, args: 1 }) === 'volatile') {
        return { reason: `may call ${name}() by attribute notation`, final: true };
      }
    }
    for (const operator of facts.operators) {
      if (this.#catalog === undefined) return { reason: 'catalog not loaded', final: false };
      const problem = this.#catalog.operatorProblem(operator);
      if (problem === 'unknown') this.#missed();
      if (problem !== undefined) {
        return { reason: `uses ${problem} operator ${display(operator)}`, final: true };
      }
    }
    for (const type of facts.casts) {
      if (this.#catalog === undefined) return { reason: 'catalog not loaded', final: false };
      if (this.#catalog.castIsVolatile(type)) {
        return { reason: `casts to ${display(type)} with a volatile function`, final: true };
      }
    }
    return undefined;
  }

  /** A name the catalog does not know: maybe created since it was loaded. */
  #missed(): void {
    this.#reloadAt = Math.min(this.#reloadAt, this.#loadStartedAt + MISS_RELOAD_INTERVAL_MS);
  }

  #reload(): void {
    const query = this.#query;
    if (query === undefined || this.#loading !== undefined) return;
    this.#loadStartedAt = Date.now();
    // A failed load is retried on the next classification a second from now.
    this.#reloadAt = this.#loadStartedAt + MISS_RELOAD_INTERVAL_MS;
    const loading = (async () => {
      const { rows } = await query(CATALOG_SQL);
      const catalog = new Catalog(rows[0]);
      if (catalog.fingerprint !== this.#catalog?.fingerprint) {
        this.#catalog = catalog;
        this.#cache.clear(); // verdicts of the old catalog
      }
      this.#reloadAt = Date.now() + this.#catalogRefreshMs;
    })().finally(() => {
      this.#loading = undefined;
    });
    loading.catch(() => {});
    this.#loading = loading;
  }
}

let defaultClassifier: SqlClassifier | undefined;

/**
 * Classifies `sql` with a shared classifier that has no catalog, so only statements that call no
 * function, operator or cast can be read-only. The replicated pool's classifier loads the
 * cluster's catalog.
 */
export function classifySql(sql: string): SqlClassification {
  defaultClassifier ??= new SqlClassifier();
  return defaultClassifier.classify(sql);
}

/** Not read-only and may write: what the classifier cannot vouch for. */
function unknownText(reason: string, command = ''): SqlClassification {
  return { readOnly: false, reason, command, mayWrite: true, beginsReadOnlyTransaction: false };
}

function primaryOnly(verdict: SqlClassification): SqlClassification {
  if (!verdict.readOnly) return verdict;
  return { ...verdict, readOnly: false, reason: 'refused by a replica as a write', mayWrite: true };
}

/** Inserts into an insertion-ordered LRU map, evicting the oldest entry when full. */
function display(name: QualifiedName): string {
  return name.schema === undefined ? name.name : `${name.schema}.${name.name}`;
}

/** PostgreSQL lowers unquoted names in ASCII only (a Kelvin sign stays a Kelvin sign). */
function asciiLowerCase(name: string): string {
  return name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw configError(`SqlClassifier: ${name} must be a non-negative integer`, { [name]: value });
  }
  return value;
}

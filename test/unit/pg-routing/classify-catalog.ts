import { SqlClassifier, type SqlClassifierOptions } from '../../../adapters/pg/classify/index.js';

/**
 * A small catalog in the shape of `CATALOG_SQL`'s row, with PostgreSQL 15's own volatility for
 * the functions and operators the unit tests use (the integration tests use the real catalog).
 * Function: [schema, name, arguments, defaults, variadic, volatility].
 */
const FUNCTIONS: ReadonlyArray<readonly [string, string, number, number, boolean, string]> = [
  ['pg_catalog', 'count', 0, 0, false, 'i'],
  ['pg_catalog', 'count', 1, 0, false, 'i'],
  ['pg_catalog', 'max', 1, 0, false, 'i'],
  ['pg_catalog', 'lower', 1, 0, false, 'i'],
  ['pg_catalog', 'now', 0, 0, false, 's'],
  ['pg_catalog', 'row_number', 0, 0, false, 'i'],
  ['pg_catalog', 'generate_series', 2, 0, false, 'i'],
  ['pg_catalog', 'generate_series', 3, 0, false, 'i'],
  ['pg_catalog', 'concat', 1, 0, true, 's'],
  ['pg_catalog', 'extract', 2, 0, false, 'i'],
  ['pg_catalog', 'nextval', 1, 0, false, 'v'],
  ['pg_catalog', 'setval', 2, 0, false, 'v'],
  ['pg_catalog', 'setval', 3, 0, false, 'v'],
  ['pg_catalog', 'random', 0, 0, false, 'v'],
  ['pg_catalog', 'pg_advisory_lock', 1, 0, false, 'v'],
  ['pg_catalog', 'pg_try_advisory_lock', 1, 0, false, 'v'],
  ['pg_catalog', 'pg_try_advisory_lock', 2, 0, false, 'v'],
  ['pg_catalog', 'set_config', 3, 0, false, 'v'],
  ['pg_catalog', 'txid_current', 0, 0, false, 's'],
  ['pg_catalog', 'jsonb_extract_path_text', 2, 0, true, 'i'],
  // a user's functions: one STABLE, one VOLATILE, and a name with a STABLE and a VOLATILE overload
  ['public', 'report_total', 1, 0, false, 's'],
  ['public', 'touch_row', 1, 0, false, 'v'],
  ['public', 'lookup', 1, 0, false, 's'],
  ['app', 'lookup', 2, 1, false, 'v'],
  ['public', 'kelvin', 0, 0, false, 's'],
];

const OPERATORS: ReadonlyArray<readonly [string, string, string]> = [
  ['pg_catalog', '=', 'i'],
  ['pg_catalog', '<>', 'i'],
  ['pg_catalog', '<', 'i'],
  ['pg_catalog', '>', 'i'],
  ['pg_catalog', '<=', 'i'],
  ['pg_catalog', '>=', 'i'],
  ['pg_catalog', '+', 'i'],
  ['pg_catalog', '~~', 'i'],
  ['pg_catalog', '->>', 'i'],
  ['public', '===', 'v'],
];

/** The fixture as `CATALOG_SQL` returns it, with `extra` functions and operators appended. */
export function fixtureCatalogRow(
  extra: typeof FUNCTIONS = [],
  extraOperators: typeof OPERATORS = [],
) {
  return {
    functions: [...FUNCTIONS, ...extra],
    operators: [...OPERATORS, ...extraOperators],
    volatile_casts: [['public', 'stamped']],
    fingerprint: `fixture-${extra.length}-${extraOperators.length}`,
  };
}

/** A classifier on the fixture catalog (plus `extraOperators`), ready to classify. */
export async function fixtureClassifier(
  options: SqlClassifierOptions = {},
  extraOperators: typeof OPERATORS = [],
): Promise<SqlClassifier> {
  const classifier = new SqlClassifier(options);
  classifier.useCatalog(async () => ({ rows: [fixtureCatalogRow([], extraOperators)] }));
  await classifier.ready();
  return classifier;
}

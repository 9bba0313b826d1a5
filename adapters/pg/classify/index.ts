// The SQL classifier: PostgreSQL's parser (WebAssembly) plus the cluster's catalog.
export type { CatalogQuery } from './catalog.js';
export { CATALOG_SQL, PRIMARY_ONLY_FUNCTIONS } from './catalog.js';
export {
  classifySql,
  type SqlClassification,
  SqlClassifier,
  type SqlClassifierOptions,
} from './classifier.js';
export { loadSqlParser } from './parser.js';
export { unpreparableReason } from './preparable.js';

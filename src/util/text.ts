// Text checks shared by the core and the adapters. Internal: not exported from any entry point.

// A lone surrogate cannot be encoded as UTF-8: PostgreSQL and Redis would store U+FFFD instead,
// and two different names would collide.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * True when `text` survives a round trip through PostgreSQL `text` and Redis unchanged: no NUL
 * character (PostgreSQL refuses it) and no lone surrogate (UTF-8 cannot encode it).
 */
export function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && !LONE_SURROGATE.test(text);
}

/** True when `text` holds a lone surrogate (not well-formed Unicode). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

import { randomUUID } from 'node:crypto';
import { configError, invalidInput } from '../errors.js';

/**
 * Global transaction ids. A transaction's id is `cw:<coordinatorId>:<txnId>` (the key of its
 * decision) and each branch's id appends the participant's name:
 * `cw:<coordinatorId>:<txnId>:<participant>` (the gid given to `PREPARE TRANSACTION`).
 *
 * Components use only `A-Z a-z 0-9 _ . -`, so a gid is safe to write as an SQL string literal
 * (PostgreSQL takes no parameters in `PREPARE TRANSACTION`) and splits unambiguously on `:`.
 * PostgreSQL keeps gids in a 200-byte buffer with a terminator, so a branch gid has at most
 * `MAX_GID_BYTES` bytes.
 */
export const GID_SCHEME = 'cw';
export const MAX_GID_BYTES = 199;

/** Length of a txn id: a random UUID without dashes. */
const TXN_ID_LENGTH = 32;
const SAFE_COMPONENT = /^[A-Za-z0-9_.-]+$/;
const TXN_ID = /^[0-9a-f]{32}$/;

export interface ParsedGid {
  /** The coordinator that owns the transaction. */
  readonly coordinatorId: string;
  /** The random per-transaction part. */
  readonly txnId: string;
  /** `cw:<coordinatorId>:<txnId>`: the transaction's id and its decision's key. */
  readonly txnGid: string;
  /** The participant's name for a branch gid; undefined for a transaction gid. */
  readonly participant: string | undefined;
}

/** The prefix every gid of `coordinatorId` starts with (recovery touches nothing else). */
export function coordinatorPrefix(coordinatorId: string): string {
  return `${GID_SCHEME}:${coordinatorId}:`;
}

/** A new transaction gid for `coordinatorId` (assumed valid: see `assertCoordinatorConfig`). */
export function newTxnGid(coordinatorId: string): string {
  // The UUID's hex digits without its dashes (8-4-4-4-12), sliced: cheaper than a replace.
  const u = randomUUID();
  return `${coordinatorPrefix(coordinatorId)}${u.slice(0, 8)}${u.slice(9, 13)}${u.slice(14, 18)}${u.slice(19, 23)}${u.slice(24)}`;
}

/** The gid of `participant`'s branch of transaction `txnGid`. */
export function branchGid(txnGid: string, participant: string): string {
  return `${txnGid}:${participant}`;
}

/** True for a name usable as a coordinator id or participant name. */
export function isSafeGidComponent(value: string): boolean {
  return SAFE_COMPONENT.test(value);
}

/**
 * Checks a coordinator id and its participants' names at construction: only safe characters,
 * and the longest branch gid they produce fits PostgreSQL's limit. Throws `CONFIG`.
 */
export function assertCoordinatorConfig(coordinatorId: string, participants: readonly string[]) {
  if (!isSafeGidComponent(coordinatorId)) {
    throw configError(
      'coordinatorId must be non-empty and use only letters, digits, "_", "." and "-"',
      { coordinatorId: coordinatorId.slice(0, 64) },
    );
  }
  for (const name of participants) {
    if (!isSafeGidComponent(name)) {
      throw configError(
        'participant names must be non-empty and use only letters, digits, "_", "." and "-"',
        { participant: name.slice(0, 64) },
      );
    }
    const bytes = Buffer.byteLength(
      branchGid(`${coordinatorPrefix(coordinatorId)}${'0'.repeat(TXN_ID_LENGTH)}`, name),
    );
    if (bytes > MAX_GID_BYTES) {
      throw configError(
        `coordinatorId and participant name make gids of ${bytes} bytes; PostgreSQL allows ` +
          `${MAX_GID_BYTES}: shorten the coordinatorId or the participant name`,
        { participant: name.slice(0, 64), bytes },
      );
    }
  }
}

/**
 * Parses a transaction or branch gid. Anything else (another scheme, unsafe characters, too
 * long, a quote) is `INVALID_INPUT`: gids also arrive from operators and from
 * `pg_prepared_xacts`, which other software shares.
 */
export function parseGid(gid: string): ParsedGid {
  if (typeof gid !== 'string' || Buffer.byteLength(gid) > MAX_GID_BYTES) {
    throw invalidInput(`a gid is a string of at most ${MAX_GID_BYTES} bytes`);
  }
  const parts = gid.split(':');
  const [scheme, coordinatorId, txnId, participant] = parts;
  if (
    parts.length < 3 ||
    parts.length > 4 ||
    scheme !== GID_SCHEME ||
    coordinatorId === undefined ||
    !isSafeGidComponent(coordinatorId) ||
    txnId === undefined ||
    !TXN_ID.test(txnId) ||
    (participant !== undefined && !isSafeGidComponent(participant))
  ) {
    throw invalidInput(
      'not a Causeway gid: expected cw:<coordinatorId>:<32 hex digits>[:<participant>]',
      { gid: gid.slice(0, 64).replace(/[^A-Za-z0-9_.:-]/g, '?') },
    );
  }
  return { coordinatorId, txnId, txnGid: `${scheme}:${coordinatorId}:${txnId}`, participant };
}

/** `parseGid`, or undefined for a gid that is not Causeway's (e.g. another tool's). */
export function tryParseGid(gid: string): ParsedGid | undefined {
  try {
    return parseGid(gid);
  } catch {
    return undefined;
  }
}

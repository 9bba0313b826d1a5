import { configError } from '../errors.js';
import { knownOptions, optionsObject } from '../options.js';
import {
  checkWriterClock,
  decodeLwwWinner,
  encodeLwwWinner,
  isPurgeable,
  joinWinners,
  LWW_OPTION_KEYS,
  type LwwOptions,
  lwwView,
  lwwWrite,
  resolveLwwOptions,
} from './lww.js';
import {
  decodeSiblingsCore,
  emptySiblingsCore,
  encodeSiblingsCore,
  mergeCores,
  resolveMaxSiblings,
  type SiblingsCore,
  type SiblingsOptions,
  viewOf,
  writeCore,
} from './siblings.js';
import type { VersionedValue, WriteOptions } from './types.js';

/** The new serialized state after a change, and the read view of it. */
export interface HandlerResult<T> {
  readonly state: string;
  readonly view: VersionedValue<T>;
}

/**
 * The conflict algorithm behind every versioned store, on serialized states (`undefined` for
 * a key never written). Stores only load a state and store the result atomically; everything
 * about versions lives here. Each method either returns a new state or throws, leaving the
 * input untouched, and may run several times for one store call (optimistic retries).
 */
export interface ConflictHandler<T> {
  readonly name: 'siblings' | 'lww';
  read(state: string | undefined): VersionedValue<T>;
  put(state: string | undefined, value: T, options: WriteOptions): HandlerResult<T>;
  delete(state: string | undefined, options: WriteOptions): HandlerResult<T>;
  merge(state: string | undefined, remote: string): HandlerResult<T>;
  /**
   * True when the state holds nothing worth keeping, so the store may drop the key: an LWW
   * tombstone older than its grace period. Never for `Siblings`, whose causal context must
   * outlive the last version so that a merge cannot bring deleted values back.
   */
  purgeable(state: string): boolean;
  /**
   * Refuses (`CLOCK_DRIFT`) a write stamped by a clock more than its `maxOffsetMs` ahead of the
   * storage's clock, `storageNowMs`. Stores call it before an LWW write; `Siblings` stamp no
   * time, so theirs does nothing.
   */
  checkClock(storageNowMs: number): void;
}

/** Options shared by every store: which handler, and that handler's options. */
export type HandlerOptions =
  | ({ readonly handler: 'siblings' } & SiblingsOptions)
  | ({ readonly handler: 'lww' } & LwwOptions);

/** The option keys of each handler. */
const HANDLER_OPTION_KEYS = {
  siblings: ['handler', 'maxSiblings'],
  lww: ['handler', ...LWW_OPTION_KEYS],
} as const;

/**
 * Builds the handler named by `options.handler` (`CONFIG` for an unknown name, a bad option, or
 * an option of the other handler).
 */
export function createConflictHandler<T>(options: HandlerOptions): ConflictHandler<T> {
  return buildConflictHandler(options, 'createConflictHandler', []);
}

/**
 * `createConflictHandler` for a store whose options are the handler's plus `storeKeys`; errors
 * name `owner`. Internal: not exported from the package.
 */
export function buildConflictHandler<T>(
  options: HandlerOptions,
  owner: string,
  storeKeys: readonly string[],
): ConflictHandler<T> {
  const { handler } = optionsObject(options, owner);
  if (handler !== 'siblings' && handler !== 'lww') {
    throw configError(`${owner}: handler must be 'siblings' or 'lww'`, { handler });
  }
  const known = [...HANDLER_OPTION_KEYS[handler], ...storeKeys] as (keyof HandlerOptions)[];
  knownOptions(options, owner, known);
  if (options.handler === 'siblings') {
    return siblingsHandler<T>(resolveMaxSiblings(options.maxSiblings));
  }
  return lwwHandler<T>(options);
}

function siblingsHandler<T>(maxSiblings: number): ConflictHandler<T> {
  const load = (state: string | undefined): SiblingsCore<T> =>
    state === undefined ? emptySiblingsCore<T>() : decodeSiblingsCore<T>(state);
  const result = (core: SiblingsCore<T>): HandlerResult<T> => ({
    state: encodeSiblingsCore(core),
    view: viewOf(core, false),
  });
  return {
    name: 'siblings',
    read: (state) => viewOf(load(state), false),
    put: (state, value, options) =>
      result(writeCore(load(state), value, false, options, maxSiblings)),
    delete: (state, options) =>
      result(writeCore<T>(load(state), undefined, true, options, maxSiblings)),
    merge: (state, remote) => result(mergeCores(load(state), decodeSiblingsCore<T>(remote))),
    purgeable: () => false,
    checkClock: () => {},
  };
}

function lwwHandler<T>(options: LwwOptions): ConflictHandler<T> {
  const { clock, tombstoneGraceMs } = resolveLwwOptions(options);
  const load = (state: string | undefined) =>
    state === undefined ? undefined : decodeLwwWinner<T>(state);
  const result = (winner: ReturnType<typeof load>): HandlerResult<T> => ({
    state: encodeLwwWinner(winner),
    view: lwwView(winner, false),
  });
  return {
    name: 'lww',
    read: (state) => lwwView(load(state), false),
    put: (state, value, writeOptions) =>
      result(lwwWrite(load(state), value, false, writeOptions, clock)),
    delete: (state, writeOptions) =>
      result(lwwWrite<T>(load(state), undefined, true, writeOptions, clock)),
    merge: (state, remote) => result(joinWinners(load(state), decodeLwwWinner<T>(remote), clock)),
    purgeable: (state) => isPurgeable(decodeLwwWinner<T>(state), clock, tombstoneGraceMs),
    checkClock: (storageNowMs) => checkWriterClock(clock, storageNowMs),
  };
}

import type { SessionContext } from './context.js';

// Work a session needs done before its next routed read, e.g. loading a user's stored floors
// once the user is known (identity that arrives after the request started). The router awaits
// it; a WeakMap keeps SessionContext itself unchanged and costs sessions without one a lookup.

/** Something to finish before a session's reads are routed. */
export interface RoutePreparation {
  /** A promise to await before routing, or undefined when there is nothing to do. */
  beforeRoute(): Promise<void> | undefined;
}

const preparations = new WeakMap<SessionContext, RoutePreparation>();

/** Makes the router await `preparation.beforeRoute()` before each read of `session`. */
export function prepareRoutesWith(session: SessionContext, preparation: RoutePreparation): void {
  preparations.set(session, preparation);
}

/** What the router awaits before routing a read of `session` (undefined: nothing). */
export function beforeRoute(session: SessionContext): Promise<void> | undefined {
  return preparations.get(session)?.beforeRoute();
}

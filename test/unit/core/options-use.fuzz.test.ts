/**
 * Options that act after construction (a coordinator's callbacks, transaction and recovery
 * options) and positional arguments that configure, fuzzed: each works or is refused with a
 * `CONFIG` or `INVALID_INPUT` `CausewayError`, never a `TypeError` (options objects given to
 * constructors: options.fuzz.test.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDecisionLog, MemoryParticipant } from '../../../adapters/memory/index.js';
import {
  LamportClock,
  SessionContext,
  TwoPhaseCoordinator,
  withSession,
} from '../../../src/index.js';
import { forwardingFetch, SessionPropagator } from '../../../src/propagation/index.js';
import { junkArb, succeedsOrRefuses } from '../../support/junk.js';

const OPTION_ERRORS = ['CONFIG', 'INVALID_INPUT'];
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

describe('options used after construction', () => {
  it(`TwoPhaseCoordinator: callbacks, transaction and recovery options, participant names (${RUNS} runs)`, async () => {
    const callbacks = fc.record(
      { onHeuristic: junkArb, onRecoveryError: junkArb, hooks: junkArb, leases: junkArb },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(
        callbacks,
        fc.oneof(fc.constant('a'), junkArb),
        junkArb,
        junkArb,
        async (extra, name, transactionOptions, recoveryOptions) => {
          const built = await succeedsOrRefuses(
            () =>
              new TwoPhaseCoordinator({
                coordinatorId: 'fuzz',
                log: new MemoryDecisionLog(),
                participants: { a: new MemoryParticipant({ name: 'a' }) },
                ...(extra as object),
              }),
            OPTION_ERRORS,
          );
          if (!built.ok) return;
          const coordinator = built.value;
          try {
            await succeedsOrRefuses(
              () =>
                coordinator.transaction(
                  (tx) => tx.participant(name as string).query('UPDATE t SET x = 1'),
                  transactionOptions as never,
                ),
              [...OPTION_ERRORS, 'TXN_ABORTED'],
            );
            await succeedsOrRefuses(
              () => coordinator.startRecovery(recoveryOptions as never),
              OPTION_ERRORS,
            );
            await succeedsOrRefuses(() => coordinator.recover(), OPTION_ERRORS);
          } finally {
            await coordinator.close();
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('options used after construction refuse unknown keys with CONFIG', () => {
  it('TwoPhaseCoordinator hooks, transaction() and startRecovery()', async () => {
    const base = {
      coordinatorId: 'keys',
      log: new MemoryDecisionLog(),
      participants: { a: new MemoryParticipant({ name: 'a' }) },
    };
    expect(
      () => new TwoPhaseCoordinator({ ...base, hooks: { onstep: () => {} } as never }),
    ).toThrow('TwoPhaseCoordinator: hooks: unknown option "onstep" (did you mean onStep?)');
    const coordinator = new TwoPhaseCoordinator(base);
    try {
      await expect(
        coordinator.transaction(() => undefined, { timeoutMS: 10 } as never),
      ).rejects.toMatchObject({
        code: 'CONFIG',
        message: 'transaction: unknown option "timeoutMS" (did you mean timeoutMs?)',
      });
      expect(() => coordinator.startRecovery({ interval: 10 } as never)).toThrow(
        'startRecovery: unknown option "interval" (did you mean intervalMs?)',
      );
    } finally {
      await coordinator.close();
    }
  });
});

describe('positional arguments that configure', () => {
  it(`LamportClock(nodeId) (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(junkArb, async (nodeId) => {
        await succeedsOrRefuses(() => new LamportClock(nodeId as never), OPTION_ERRORS);
      }),
      { numRuns: RUNS },
    );
  });

  it(`SessionPropagator(signer) and forwardingFetch(signer, inner) (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(junkArb, junkArb, async (signer, inner) => {
        await succeedsOrRefuses(() => new SessionPropagator(signer as never), OPTION_ERRORS);
        await succeedsOrRefuses(
          () => forwardingFetch(signer as never, inner as never),
          OPTION_ERRORS,
        );
      }),
      { numRuns: RUNS },
    );
    // Refused at construction, not at the first request.
    expect(() => new SessionPropagator({} as never)).toThrow('signer must be a consistency()');
    expect(() => forwardingFetch({} as never)).toThrow('signer must be a consistency()');
  });

  it(`SessionContext(state, level) and withSession(state, fn, options) (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(junkArb, junkArb, async (state, level) => {
        await succeedsOrRefuses(
          () => new SessionContext(state as never, level as never),
          OPTION_ERRORS,
        );
        await succeedsOrRefuses(
          () => withSession(state as never, (s) => s.id, { level: level as never }),
          OPTION_ERRORS,
        );
      }),
      { numRuns: RUNS },
    );
  });
});

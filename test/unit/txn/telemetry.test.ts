import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDecisionLog } from '../../../adapters/memory/decision-log.js';
import { MemoryParticipant } from '../../../adapters/memory/participant.js';
import { TwoPhaseCoordinator } from '../../../src/txn/coordinator.js';
import { installTelemetry } from '../../support/otel.js';

describe('2PC telemetry', () => {
  let telemetry: ReturnType<typeof installTelemetry>;
  beforeAll(() => {
    telemetry = installTelemetry();
  });
  afterAll(() => telemetry.stop());

  it('traces each phase with the gid and counts outcomes', async () => {
    const users = new MemoryParticipant();
    const perms = new MemoryParticipant();
    const coordinator = new TwoPhaseCoordinator({
      coordinatorId: 'otel',
      log: new MemoryDecisionLog(),
      participants: { users, perms },
    });
    const { gid } = await coordinator.transaction(async (tx) => {
      await tx.participant('users').query('INSERT 1');
      await tx.participant('perms').query('INSERT 1');
    });
    // One participant: a one-phase commit, here refused.
    perms.failNext('local-commit');
    await coordinator
      .transaction(async (tx) => {
        await tx.participant('perms').query('INSERT 2');
      })
      .catch(() => {});
    await coordinator.recover();

    const spans = telemetry.spans.getFinishedSpans();
    const root = spans.find(
      (span) => span.name === 'causeway.2pc' && span.attributes['causeway.gid'] === gid,
    );
    expect(root?.attributes['causeway.outcome']).toBe('committed');
    expect(root?.attributes['causeway.2pc.path']).toBe('logged');
    const children = spans.filter(
      (span) => span.parentSpanContext?.spanId === root?.spanContext().spanId,
    );
    expect(children.map((span) => span.name)).toEqual([
      'causeway.2pc.prepare',
      'causeway.2pc.decide',
      'causeway.2pc.commit',
    ]);
    for (const child of children) expect(child.attributes['causeway.gid']).toBe(gid);
    const failed = spans.find(
      (span) => span.name === 'causeway.2pc' && span.attributes['causeway.outcome'] === 'aborted',
    );
    expect(failed?.status.code).toBe(2);
    expect(failed?.attributes['causeway.2pc.path']).toBe('one-phase');
    expect(spans.some((span) => span.name === 'causeway.2pc.recover')).toBe(true);
    expect(
      await telemetry.counter('causeway.2pc.outcomes', { 'causeway.outcome': 'committed' }),
    ).toBe(1);
    expect(
      await telemetry.counter('causeway.2pc.outcomes', { 'causeway.outcome': 'aborted' }),
    ).toBe(1);
  });
});

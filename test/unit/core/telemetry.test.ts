import { SpanStatusCode } from '@opentelemetry/api';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CausewayError, ErrorCode } from '../../../src/errors.js';
import { Attr, addToCounter, CounterName, SpanName, withSpan } from '../../../src/telemetry.js';
import { installTelemetry, type Telemetry } from '../../support/otel.js';

let telemetry: Telemetry;
beforeAll(() => {
  telemetry = installTelemetry();
});
afterAll(() => telemetry.stop());
beforeEach(() => telemetry.spans.reset());

describe('withSpan', () => {
  it('ends the span and returns the result', async () => {
    const result = await withSpan(SpanName.ROUTE, { 'causeway.level': 'strong' }, async () => 42);
    expect(result).toBe(42);
    const [span] = telemetry.spans.getFinishedSpans();
    expect(span?.name).toBe('causeway.route');
    expect(span?.attributes['causeway.level']).toBe('strong');
    expect(span?.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it('records the error, sets status ERROR, ends the span and rethrows the same error', async () => {
    const error = new CausewayError(ErrorCode.TXN_ABORTED, 'vote no');
    await expect(
      withSpan(SpanName.TWO_PC, {}, () => {
        throw error;
      }),
    ).rejects.toBe(error);
    const [span] = telemetry.spans.getFinishedSpans();
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'vote no' });
    expect(span?.events.map((e) => e.name)).toContain('exception');
  });

  it('makes the span active for nested work', async () => {
    await withSpan(SpanName.TWO_PC, {}, async () => {
      await withSpan(SpanName.TWO_PC_PREPARE, {}, async () => {});
    });
    const [child, parent] = telemetry.spans.getFinishedSpans();
    expect(child?.parentSpanContext?.spanId).toBe(parent?.spanContext().spanId);
  });
});

describe('addToCounter', () => {
  it('counts on the provider registered after import', async () => {
    addToCounter(CounterName.FENCE_REJECTIONS, { 'causeway.resource': 'r' });
    addToCounter(CounterName.FENCE_REJECTIONS, { 'causeway.resource': 'r' }, 2);
    const points = await telemetry.points(CounterName.FENCE_REJECTIONS);
    expect(points.at(-1)?.value).toBe(3);
  });
});

describe('recordError', () => {
  it('sets error.type to the CausewayError code, an error name, or _OTHER', async () => {
    const thrown = [
      new CausewayError(ErrorCode.STALE_FENCING_TOKEN, 'stale'),
      new TypeError('boom'),
      'a string',
    ];
    for (const error of thrown) {
      await expect(
        withSpan(SpanName.FENCE_CHECK, {}, () => {
          throw error;
        }),
      ).rejects.toBe(error);
    }
    expect(telemetry.spans.getFinishedSpans().map((s) => s.attributes[Attr.ERROR_TYPE])).toEqual([
      'STALE_FENCING_TOKEN',
      'TypeError',
      '_OTHER',
    ]);
    expect(Attr.ERROR_TYPE).toBe('error.type');
  });

  it('leaves error.type unset on a span that succeeded', async () => {
    await withSpan(SpanName.FENCE_CHECK, {}, () => 1);
    expect(telemetry.spans.getFinishedSpans()[0]?.attributes).not.toHaveProperty(Attr.ERROR_TYPE);
  });
});

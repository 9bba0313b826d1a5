import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';

/** A counter's data point as the in-memory exporter holds it. */
export interface CounterPoint {
  attributes: Record<string, unknown>;
  value: unknown;
}

/** What `installTelemetry()` returns. */
export type Telemetry = ReturnType<typeof installTelemetry>;

/**
 * Registers global in-memory trace and metric pipelines (with an async-hooks context manager)
 * for one test file: call it in `beforeAll` and `stop()` in `afterAll`.
 */
export function installTelemetry() {
  const spans = new InMemorySpanExporter();
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Exported only on demand (forceFlush): the interval never fires within a test.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  );
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

  /** The cumulative data points of `counter` now. */
  async function points(counter: string): Promise<CounterPoint[]> {
    exporter.reset();
    await reader.forceFlush();
    return exporter
      .getMetrics()
      .flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics))
      .filter((metric) => metric.descriptor.name === counter)
      .flatMap((metric) => metric.dataPoints as CounterPoint[]);
  }

  return {
    spans,
    tracer: trace.getTracer('test'),
    points,
    /** Cumulative value of `counter` for the points whose attributes include `attributes`. */
    async counter(counter: string, attributes: Record<string, string> = {}): Promise<number> {
      let total = 0;
      for (const point of await points(counter)) {
        const matches = Object.entries(attributes).every(
          ([key, value]) => point.attributes[key] === value,
        );
        if (matches) total += point.value as number;
      }
      return total;
    },
    stop() {
      trace.disable();
      metrics.disable();
      context.disable();
    },
  };
}

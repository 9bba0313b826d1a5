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

/** Registers in-memory trace and metric pipelines for one test file; call `stop()` in afterAll. */
export function installTelemetry() {
  const spans = new InMemorySpanExporter();
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  );
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  return {
    spans,
    tracer: trace.getTracer('test'),
    /** Cumulative value of `counter` for the points whose attributes include `attributes`. */
    async counter(counter: string, attributes: Record<string, string> = {}): Promise<number> {
      exporter.reset();
      await reader.forceFlush();
      let total = 0;
      for (const resource of exporter.getMetrics()) {
        for (const scope of resource.scopeMetrics) {
          for (const metric of scope.metrics) {
            if (metric.descriptor.name !== counter) continue;
            for (const point of metric.dataPoints) {
              const matches = Object.entries(attributes).every(
                ([key, value]) => point.attributes[key] === value,
              );
              if (matches) total += point.value as number;
            }
          }
        }
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

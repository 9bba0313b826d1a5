/**
 * OpenTelemetry for the example service. The library depends only on `@opentelemetry/api`; an
 * application installs the SDK, as here: a tracer provider with an in-memory exporter (or the
 * console exporter), an async-hooks context manager so that spans follow requests across
 * awaits, and a span per HTTP request, on which Causeway records its `causeway.route` events.
 */
import { context, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  ConsoleSpanExporter,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { NextFunction, Request, Response } from 'express';

export type TraceExporter = 'memory' | 'console';

/** Counts of what was traced since start-up. */
export interface TraceSummary {
  readonly spans: number;
  /** Finished spans by name. */
  readonly byName: Readonly<Record<string, number>>;
  /** `causeway.route` events on request spans, by `causeway.target` (leader or replica). */
  readonly routeEvents: Readonly<Record<string, number>>;
}

export interface Tracing {
  /** Express middleware: one server span per request, active while the request runs. */
  requestSpans(req: Request, res: Response, next: NextFunction): void;
  summary(): TraceSummary;
  /** The latest finished spans (in-memory exporter only), newest last. */
  recent(limit: number): ReadableSpan[];
  shutdown(): Promise<void>;
}

/** Spans the in-memory exporter keeps; older ones are dropped (the counts keep everything). */
const KEEP_SPANS = 500;

/** Registers the SDK globally (once per process) and returns the pieces the service uses. */
export function setupTracing(exporterKind: TraceExporter = 'memory'): Tracing {
  const memory = exporterKind === 'memory' ? new InMemorySpanExporter() : undefined;
  const byName: Record<string, number> = {};
  const routeEvents: Record<string, number> = {};
  let spans = 0;
  const counter: SpanProcessor = {
    onStart: () => {},
    onEnd(span) {
      spans++;
      byName[span.name] = (byName[span.name] ?? 0) + 1;
      for (const event of span.events) {
        if (event.name !== 'causeway.route') continue;
        const target = String(event.attributes?.['causeway.target'] ?? 'unknown');
        routeEvents[target] = (routeEvents[target] ?? 0) + 1;
      }
      if (memory !== undefined && memory.getFinishedSpans().length > KEEP_SPANS) memory.reset();
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(memory ?? new ConsoleSpanExporter()), counter],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  const tracer = trace.getTracer('editorial-example');

  return {
    requestSpans(req, res, next) {
      tracer.startActiveSpan(`${req.method} request`, { kind: SpanKind.SERVER }, (span: Span) => {
        res.once('finish', () => {
          // The matched route, once routing has found it (e.g. `GET /articles/:slug`).
          const route = req.route?.path;
          if (typeof route === 'string') span.updateName(`${req.method} ${route}`);
          span.setAttributes({ 'http.request.method': req.method, 'url.path': req.path });
          span.setAttribute('http.response.status_code', res.statusCode);
          if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
        });
        next();
      });
    },
    summary: () => ({ spans, byName: { ...byName }, routeEvents: { ...routeEvents } }),
    recent: (limit) => (memory?.getFinishedSpans() ?? []).slice(-limit),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}

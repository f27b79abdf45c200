// OpenTelemetry tracing. Spans are always recorded (logs need their ids);
// export over OTLP/HTTP switches on with the standard
// OTEL_EXPORTER_OTLP_ENDPOINT variable and is off by default.
import { context, propagation, trace } from "@opentelemetry/api";
import type { Context, Span, TextMapGetter, TextMapSetter, Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";

let installed: BasicTracerProvider | undefined;

/**
 * The most recent finished spans of this process, kept in memory so an
 * operator (and a test) can see a trace without a collector. Bounded.
 */
export function createRecentSpans(capacity = 5000) {
  // A fixed ring: recording a span costs the same however full it is.
  const slots: Array<ReadableSpan | undefined> = new Array<ReadableSpan | undefined>(capacity);
  let next = 0;
  let size = 0;
  const all = (): ReadableSpan[] => {
    const out: ReadableSpan[] = [];
    for (let i = 0; i < size; i++) out.push(slots[(next - size + i + capacity) % capacity]!);
    return out;
  };
  const processor: SpanProcessor = {
    onStart() {},
    onEnd(span) {
      slots[next] = span;
      next = (next + 1) % capacity;
      if (size < capacity) size++;
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  return {
    processor,
    /** Finished spans of one trace, oldest first. */
    ofTrace: (traceId: string) => all().filter((s) => s.spanContext().traceId === traceId),
    /** Every span kept, oldest first. */
    all: (): readonly ReadableSpan[] => all(),
  };
}

/** This process's recent spans. */
export const recentSpans = createRecentSpans();

export interface TracingOptions {
  /** service.name of the resource. Default OTEL_SERVICE_NAME, then "shop". */
  serviceName?: string;
  /** Extra processors, for example an in-memory one in tests. */
  processors?: SpanProcessor[];
}

/**
 * Installs the global tracer provider, context manager and W3C propagator.
 * Idempotent: a process has one provider; later calls return it.
 */
export function installTracing(options: TracingOptions = {}): BasicTracerProvider {
  if (installed) return installed;
  const processors = [recentSpans.processor, ...(options.processors ?? [])];
  if (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? "shop" }),
    spanProcessors: processors,
  });
  const contextManager = new AsyncLocalStorageContextManager();
  contextManager.enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  installed = provider;
  return provider;
}

export function tracer(): Tracer {
  return trace.getTracer("shop-platform");
}

const headersGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

const headersSetter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** The remote parent carried by traceparent/tracestate, if any. */
export function extractContext(headers: Headers): Context {
  return propagation.extract(context.active(), headers, headersGetter);
}

const rawGetter: TextMapGetter<Record<string, string | string[] | undefined>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** The same, from headers as node:http2 parsed them (lower-case names). */
export function extractContextFromRaw(headers: Record<string, string | string[] | undefined>): Context {
  return propagation.extract(context.active(), headers, rawGetter);
}

/** Writes traceparent/tracestate for the active context into headers. */
export function injectContext(headers: Headers, ctx: Context = context.active()): void {
  propagation.inject(ctx, headers, headersSetter);
}

export function spanIds(span: Span | undefined): { trace_id?: string; span_id?: string } {
  if (!span) return {};
  const sc = span.spanContext();
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

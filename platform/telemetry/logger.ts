// JSON logs through pino. One logger per process; services take children.
// Every line also lands in a bounded in-memory ring (recentLogLines), so the
// operations console can show the lines of one trace without a log stack.
import { trace } from "@opentelemetry/api";
import { pino } from "pino";
import type { Logger, DestinationStream } from "pino";

export type { Logger };

export interface LoggerOptions {
  /** Default LOG_LEVEL, then "info". */
  level?: string;
  /** Where lines go. Default stdout. */
  destination?: DestinationStream;
  /**
   * The ring that keeps a copy of every line written, as printed (redacted).
   * Default recentLogLines, this process's ring; false keeps no copy.
   */
  recent?: LogRing | false;
}

export interface LogRing {
  /** Keeps one printed line; the oldest is dropped when full. */
  push(line: string): void;
  /** The lines kept, oldest first; only those containing `includes` when given. */
  lines(includes?: string): string[];
  readonly capacity: number;
}

/** A fixed-size ring of printed lines: a push costs the same however full it is. */
export function createLogRing(capacity = 5000): LogRing {
  const slots: Array<string | undefined> = new Array<string | undefined>(capacity);
  let next = 0;
  let size = 0;
  return {
    capacity,
    push(line) {
      slots[next] = line;
      next = (next + 1) % capacity;
      if (size < capacity) size++;
    },
    lines(includes) {
      const out: string[] = [];
      for (let i = 0; i < size; i++) {
        const line = slots[(next - size + i + capacity) % capacity]!;
        if (includes === undefined || line.includes(includes)) out.push(line);
      }
      return out;
    },
  };
}

/** This process's recent log lines, shared by every logger createLogger makes. */
export const recentLogLines = createLogRing();

export function createLogger(options: LoggerOptions = {}): Logger {
  const ring = options.recent ?? recentLogLines;
  return pino(
    {
      level: options.level ?? process.env.LOG_LEVEL ?? "info",
      base: { pid: process.pid },
      // Epoch milliseconds: formatting an ISO date on every line costs more
      // than the rest of the line's fields together.
      timestamp: pino.stdTimeFunctions.epochTime,
      formatters: { level: (label) => ({ level: label }) },
      // Belt and braces: values under these keys never print, whatever logs
      // them. Request bodies are redacted from the contract (redaction.ts);
      // no wildcard paths here, they cost on every line.
      redact: { paths: ["password", "token", "authorization", "request.password", "request.token"], censor: "[REDACTED]" },
      // A line written while a span is active carries its ids, so every line
      // of a call (a degraded section, a handler's warning) can be found by
      // trace id. Ids passed explicitly in the line win.
      mixin() {
        const span = trace.getActiveSpan();
        if (!span) return {};
        const { traceId, spanId } = span.spanContext();
        return { trace_id: traceId, span_id: spanId };
      },
      // The printed line, after redaction: the ring never holds more than stdout shows.
      // (pino reads hooks.logMethod unconditionally: no ring means empty hooks, not none.)
      hooks: ring ? { streamWrite: (line) => (ring.push(line), line) } : {},
    },
    options.destination ?? stdout(),
  );
}

let stdoutDestination: DestinationStream | undefined;

/**
 * Stdout, buffered: lines are written 4 KiB at a time, and at least every
 * 100 ms, instead of one write per line, and what is left is flushed when the
 * process exits. A kill -9 can lose the last 100 ms of lines; the RPC path
 * saves a system call per request.
 */
function stdout(): DestinationStream {
  if (!stdoutDestination) {
    const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
    setInterval(() => {
      try {
        destination.flush();
      } catch {
        // Not open yet, or a write already in flight: the next tick flushes.
      }
    }, 100).unref();
    stdoutDestination = destination;
  }
  return stdoutDestination;
}

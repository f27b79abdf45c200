// Every refusal the transport makes (a malformed frame, an unknown method, a
// client past a limit) counts in rpc_server_refused_total and writes one log
// line. The lines pass a token bucket: a flood of bad requests costs a few
// lines a second, and the next line that gets through says how many were
// left out, so the log stays readable and the count stays exact.
import type { Logger } from "./logger.ts";
import type { RefusalReason, RpcMetrics } from "./metrics.ts";

export interface RefusalReporter {
  /** Counts the refusal and logs it unless the log budget is spent. */
  report(reason: RefusalReason, fields: Record<string, unknown>, message: string): void;
}

export interface RefusalReporterOptions {
  logger: Logger;
  metrics: RpcMetrics;
  /** Lines allowed in a burst. Default 20. */
  burst?: number;
  /** Lines a second once the burst is spent. Default 5. */
  perSecond?: number;
}

export function createRefusalReporter(options: RefusalReporterOptions): RefusalReporter {
  const burst = options.burst ?? 20;
  const perSecond = options.perSecond ?? 5;
  const logger = options.logger.child({ component: "transport" });
  let tokens = burst;
  let refilledAt = performance.now();
  let suppressed = 0;
  return {
    report(reason, fields, message) {
      options.metrics.refused(reason);
      const now = performance.now();
      tokens = Math.min(burst, tokens + ((now - refilledAt) / 1000) * perSecond);
      refilledAt = now;
      if (tokens < 1) {
        suppressed++;
        return;
      }
      tokens--;
      const line: Record<string, unknown> = { ...fields, reason, message };
      if (suppressed > 0) {
        line.suppressed_before = suppressed;
        suppressed = 0;
      }
      logger.warn(line, "refused");
    },
  };
}

/** Client-supplied text cut to a bound before it is echoed anywhere (a status message, a log line). */
export function clip(text: string, max = 200): string {
  if (text.length <= max) return text;
  // Never cut between the two halves of a surrogate pair.
  const end = isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max;
  return `${text.slice(0, end)}… (${text.length} chars)`;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

// Log lines from the process's ring of printed lines, as the console shows
// them: the most recent ones, or those of one trace.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { LogLineSchema } from "../../gen/mesh/v1/ops_pb.js";
import type { LogRing } from "../telemetry/logger.ts";

type LogLineInit = MessageInitShape<typeof LogLineSchema>;

/**
 * The last `limit` lines, oldest first; with a trace id only the lines whose
 * trace_id is that id (a substring match picks candidates, then the parsed
 * field decides).
 */
export function readLogLines(ring: LogRing, options: { traceId?: string; limit: number; instance: string }): LogLineInit[] {
  const candidates = ring.lines(options.traceId || undefined);
  const out: LogLineInit[] = [];
  for (let i = candidates.length - 1; i >= 0 && out.length < options.limit; i--) {
    const line = parseLine(candidates[i], options.instance);
    if (!line) continue;
    if (options.traceId && line.traceId !== options.traceId) continue;
    out.push(line);
  }
  return out.reverse();
}

function parseLine(text: string, instance: string): LogLineInit | undefined {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Only pino writes to the ring, so this is a line cut by a crash; skip it.
    return undefined;
  }
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  const time = typeof obj.time === "string" ? Date.parse(obj.time) : typeof obj.time === "number" ? obj.time : NaN;
  return {
    time: Number.isNaN(time) ? undefined : timestampFromMs(time),
    level: str(obj.level),
    message: str(obj.msg),
    // Service modules log through children named by "app"; the event machinery by consumer or relay.
    service: str(obj.app) || str(obj.consumer) || str(obj.relay),
    traceId: str(obj.trace_id),
    spanId: str(obj.span_id),
    json: text.trimEnd(),
    instance,
  };
}

// JSON logs through pino. One logger per process; services take children.
import { pino } from "pino";
import type { Logger, DestinationStream } from "pino";

export type { Logger };

export interface LoggerOptions {
  /** Default LOG_LEVEL, then "info". */
  level?: string;
  /** Where lines go. Default stdout. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.LOG_LEVEL ?? "info",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Belt and braces: values under these keys never print, whatever logs them.
      redact: { paths: ["password", "token", "authorization", "*.password", "*.token", "*.authorization"], censor: "[REDACTED]" },
    },
    options.destination,
  );
}

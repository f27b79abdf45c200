// Which bus a process uses, from its environment: in-process unless BUS says
// nats. Every service of one shop must agree, so the runner decides once.
import type { Logger } from "../telemetry/logger.ts";
import { createInProcessBus } from "./in-process-bus.ts";
import type { InProcessBus } from "./in-process-bus.ts";
import { createJetStreamBus } from "./jetstream-bus.ts";
import type { JetStreamBus } from "./jetstream-bus.ts";

/**
 * BUS: "in-process" (default) or "nats" (JetStream, required when services
 * run in separate processes). With nats: NATS_URL (default
 * nats://127.0.0.1:4222, several separated by commas), EVENT_STREAM (default
 * SHOP_EVENTS) and EVENT_SUBJECT_PREFIX (default shop.events), which let two
 * shops share one server without seeing each other's events.
 */
export function eventBusFromEnv(env: NodeJS.ProcessEnv, logger: Logger): InProcessBus | JetStreamBus {
  const kind = (env.BUS ?? "").trim().toLowerCase();
  if (kind === "" || kind === "in-process") return createInProcessBus();
  if (kind === "nats" || kind === "jetstream") {
    return createJetStreamBus({
      servers: env.NATS_URL || "nats://127.0.0.1:4222",
      logger: logger.child({ bus: "jetstream" }),
      stream: env.EVENT_STREAM || undefined,
      subjectPrefix: env.EVENT_SUBJECT_PREFIX || undefined,
    });
  }
  throw new Error(`BUS=${env.BUS}: expected "in-process" or "nats"`);
}

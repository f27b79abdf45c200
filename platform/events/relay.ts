// Publishes committed outbox rows, oldest first, and marks them published
// only after the bus accepted them: a crash in between publishes them again
// on restart (at least once), and consumers' inboxes drop the second copy.
import type { Database } from "../store/sqlite.ts";
import type { Logger } from "../telemetry/logger.ts";
import { createAlarm } from "./alarm.ts";
import type { EventBus, EventRecord } from "./event-record.ts";

export interface OutboxRelayOptions {
  db: Database;
  bus: EventBus;
  logger: Logger;
  /** How often to look when nobody kicked. Default 250 ms. */
  pollMs?: number;
  /** Rows per publish. Default 100. */
  batchSize?: number;
}

export interface OutboxRelay {
  start(): void;
  /** Look now: called after a commit that emitted events. */
  kick(): void;
  /** Finishes the batch in progress, then stops. */
  stop(): Promise<void>;
}

interface OutboxRow {
  seq: number | bigint;
  id: string;
  type: string;
  payload: Uint8Array;
  headers: string;
  occurred_at: string;
  source: string;
}

export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { db, bus, logger } = options;
  const pollMs = options.pollMs ?? 250;
  const batchSize = options.batchSize ?? 100;
  let running = false;
  let loop: Promise<void> | undefined;

  const alarm = createAlarm();
  const sleep = (ms: number) => alarm.sleep(ms);

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      let published = 0;
      try {
        const rows = await db.all<OutboxRow>(
          "SELECT seq, id, type, payload, headers, occurred_at, source FROM event_outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?",
          batchSize,
        );
        if (rows.length > 0) {
          await bus.publish(rows.map(toRecord));
          await db.run(
            `UPDATE event_outbox SET published_at = ? WHERE seq IN (${rows.map(() => "?").join(", ")})`,
            new Date().toISOString(),
            ...rows.map((r) => r.seq),
          );
          published = rows.length;
        }
        failures = 0;
      } catch (err) {
        failures++;
        logger.warn({ err, failures }, "outbox relay could not publish; retrying");
        await sleep(Math.min(5000, 100 * 2 ** failures));
        continue;
      }
      if (published < batchSize) await sleep(pollMs);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    kick() {
      alarm.ring();
    },
    async stop() {
      running = false;
      alarm.wakeIfSleeping();
      await loop;
    },
  };
}

function toRecord(row: OutboxRow): EventRecord {
  return {
    id: row.id,
    type: row.type,
    payload: row.payload,
    headers: JSON.parse(row.headers) as Record<string, string>,
    occurredAt: row.occurred_at,
    source: row.source,
  };
}

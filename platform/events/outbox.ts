// The transactional outbox: a service writes its state change and the events
// it causes in one transaction, so an event exists exactly when the change it
// announces was committed. The relay publishes them afterwards.
import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { Database, Queryable } from "../store/sqlite.ts";
import { injectContext } from "../telemetry/tracing.ts";

/** Adds an event to the transaction; it leaves only if the transaction commits. */
export type Emit = <D extends DescMessage>(schema: D, event: MessageInitShape<D>) => Promise<string>;

export interface Outbox {
  /** Runs fn in one transaction with an emit bound to it; wakes the relay after commit. */
  transaction<T>(fn: (tx: Queryable, emit: Emit) => Promise<T>): Promise<T>;
  /** Called after each commit that emitted events. */
  onCommit(listener: () => void): void;
}

export function createOutbox(db: Database, source: string): Outbox {
  const listeners: Array<() => void> = [];
  return {
    async transaction(fn) {
      let emitted = 0;
      const result = await db.transaction((tx) => {
        const emit: Emit = async (schema, event) => {
          const id = randomUUID();
          const carrier = new Headers();
          injectContext(carrier);
          const headers = Object.fromEntries(carrier);
          await tx.run(
            "INSERT INTO event_outbox (id, type, payload, headers, occurred_at, source) VALUES (?, ?, ?, ?, ?, ?)",
            id,
            schema.typeName,
            toBinary(schema, create(schema, event)),
            JSON.stringify(headers),
            new Date().toISOString(),
            source,
          );
          emitted++;
          return id;
        };
        return fn(tx, emit);
      });
      if (emitted > 0) for (const l of listeners) l();
      return result;
    },
    onCommit(listener) {
      listeners.push(listener);
    },
  };
}

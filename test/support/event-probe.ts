// A service module for tests: emits events as if another service had (through
// its own outbox), and records every event of the types it listens to. Lets a
// service be tested alone, through its events, with the real bus.
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { ServiceEvents, ServiceModule } from "@shop/platform";

export interface ProbedEvent {
  readonly id: string;
  readonly type: string;
  readonly source: string;
  readonly event: MessageShape<DescMessage>;
}

export interface EventProbe {
  readonly module: ServiceModule;
  readonly received: ProbedEvent[];
  emit<D extends DescMessage>(schema: D, event: MessageInitShape<D>): Promise<string>;
  /** The first received event of that type matching the predicate, waiting up to timeoutMs. */
  waitFor<D extends DescMessage>(schema: D, match?: (event: MessageShape<D>) => boolean, timeoutMs?: number): Promise<MessageShape<D>>;
  /** Every received event of that type. */
  all<D extends DescMessage>(schema: D): Array<MessageShape<D>>;
}

export function createEventProbe(listenTo: readonly DescMessage[], name = "probe"): EventProbe {
  const received: ProbedEvent[] = [];
  const waiters = new Set<() => void>();
  let events: ServiceEvents | undefined;
  const probe: EventProbe = {
    received,
    module: {
      name,
      migrations: [],
      async start(ctx) {
        events = ctx.events;
        for (const schema of listenTo) {
          ctx.events.on(schema, async (event, meta) => {
            received.push({ id: meta.id, type: meta.type, source: meta.source, event });
            for (const w of [...waiters]) w();
          });
        }
        return { services: [] };
      },
    },
    emit(schema, event) {
      if (!events) throw new Error("the probe has not started: pass probe.module to the shop");
      return events.transaction((_tx, emit) => emit(schema, event));
    },
    all<D extends DescMessage>(schema: D) {
      return received.filter((r) => r.type === schema.typeName).map((r) => r.event as MessageShape<D>);
    },
    waitFor<D extends DescMessage>(schema: D, match: (event: MessageShape<D>) => boolean = () => true, timeoutMs = 5000) {
      const find = () => probe.all(schema).find(match);
      const found = find();
      if (found) return Promise.resolve(found);
      return new Promise<MessageShape<D>>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${schema.typeName} matching within ${timeoutMs} ms; received: ${received.map((r) => r.type).join(", ")}`));
        }, timeoutMs);
        const check = () => {
          const hit = find();
          if (hit) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(hit);
          }
        };
        waiters.add(check);
      });
    },
  };
  return probe;
}

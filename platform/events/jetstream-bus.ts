// The bus of the mesh: NATS JetStream. Publishing stores each event in one
// stream, on the subject `<prefix>.<event type>`, with the event id as the
// message id, so a second publish within the stream's duplicate window (the
// relay crashed before marking the row) is dropped by the server; publish
// resolves only once the server acknowledged storing every event, and only
// then does the relay mark them published. Consuming services pull through
// durable consumers (jetstream-consumer.ts). The connection reconnects
// forever: while the server is away, publishing fails and the relay retries,
// and consumers resume where their durable state says once it is back.
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import type { MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import { DiscardPolicy, jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager, JsMsg, StreamConfig } from "@nats-io/jetstream";
import type { Logger } from "../telemetry/logger.ts";
import type { EventBus, EventRecord } from "./event-record.ts";
import type { Consumer } from "./consumer.ts";
import type { EventHandling } from "./event-handling.ts";
import { createJetStreamConsumer } from "./jetstream-consumer.ts";
import type { JetStreamConsumerOptions } from "./jetstream-consumer.ts";

export interface JetStreamBusOptions {
  /** NATS server URL, or several separated by commas ("nats://127.0.0.1:4222"). */
  servers: string | readonly string[];
  logger: Logger;
  /** The stream every event is stored in. Default "SHOP_EVENTS". */
  stream?: string;
  /**
   * Events are published on `<subjectPrefix>.<event type>`; the stream takes
   * `<subjectPrefix>.>`. Default "shop.events". Two streams must not overlap.
   */
  subjectPrefix?: string;
  /** Publishes of the same event id within this window are stored once. Default 2 min. */
  duplicateWindowMs?: number;
  /** How long the stream keeps an event, acknowledged or not. Default 7 days. */
  maxAgeMs?: number;
  /** How long a publish waits for the server's acknowledgement, and for a first connection. Default 5 s. */
  publishTimeoutMs?: number;
  /** Pause between reconnect attempts. Default 500 ms. */
  reconnectWaitMs?: number;
  /** Connection name the server shows. Default "shop". */
  connectionName?: string;
}

/** What a JetStream consumer needs from the bus. */
export interface JetStreamLink {
  readonly stream: string;
  readonly logger: Logger;
  /** The client and manager once connected and the stream exists; rejects after timeoutMs or when closed. */
  ready(timeoutMs?: number): Promise<{ js: JetStreamClient; jsm: JetStreamManager }>;
  subjectFor(type: string): string;
  /** Durable consumer name of one service for one event type. */
  durableFor(service: string, type: string): string;
  /** The event a message carries. */
  recordOf(m: JsMsg): EventRecord;
  readonly closed: boolean;
}

export interface JetStreamBus extends EventBus {
  readonly kind: "jetstream";
  readonly stream: string;
  /** A service's consumer: one durable pull consumer per event type it handles, started by start(). */
  consumer(handling: EventHandling, options?: JetStreamConsumerOptions): Consumer;
  /** Events of these types the service's durables have not acknowledged yet: undelivered, in flight or waiting for redelivery. */
  backlog(service: string, types: readonly string[]): Promise<number>;
}

/** Headers that carry the envelope; every other header is the emitter's trace context. */
const TYPE_HEADER = "Shop-Event-Type";
const SOURCE_HEADER = "Shop-Event-Source";
const OCCURRED_HEADER = "Shop-Occurred-At";
const MSG_ID_HEADER = "Nats-Msg-Id";

const nanos = (ms: number) => Math.round(ms * 1_000_000);

export function createJetStreamBus(options: JetStreamBusOptions): JetStreamBus {
  const { logger } = options;
  const servers = typeof options.servers === "string" ? options.servers.split(",").map((s) => s.trim()) : [...options.servers];
  const stream = options.stream ?? "SHOP_EVENTS";
  const prefix = options.subjectPrefix ?? "shop.events";
  const duplicateWindowMs = options.duplicateWindowMs ?? 120_000;
  const maxAgeMs = options.maxAgeMs ?? 7 * 24 * 3600_000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const reconnectWaitMs = options.reconnectWaitMs ?? 500;
  let closed = false;
  let nc: NatsConnection | undefined;
  let clients: { js: JetStreamClient; jsm: JetStreamManager } | undefined;
  let streamReady: Promise<void> | undefined;
  let stopWaiting: () => void = () => {};
  const closing = new Promise<void>((resolve) => (stopWaiting = resolve));

  const sleep = (ms: number) => Promise.race([new Promise<void>((r) => setTimeout(r, ms).unref()), closing]);

  // connect() gives up when the first attempt fails; after that the client
  // reconnects by itself (maxReconnectAttempts -1). So the first connection
  // is retried here, in a loop close() can end.
  const connection: Promise<NatsConnection> = (async () => {
    for (let attempt = 1; ; attempt++) {
      if (closed) throw new Error("event bus closed");
      try {
        const c = await connect({ servers, name: options.connectionName ?? "shop", maxReconnectAttempts: -1, reconnectTimeWait: reconnectWaitMs, timeout: publishTimeoutMs });
        if (closed) {
          await c.close();
          throw new Error("event bus closed");
        }
        watch(c);
        nc = c;
        const jsOpts = { timeout: publishTimeoutMs };
        clients = { js: jetstream(c, jsOpts), jsm: await jetstreamManager(c, { ...jsOpts, checkAPI: false }) };
        logger.info({ servers, stream }, "connected to NATS");
        return c;
      } catch (err) {
        if (closed) throw err;
        if (attempt === 1 || attempt % 20 === 0) logger.warn({ err, servers, attempt }, "cannot reach NATS; retrying");
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
  })();
  // It rejects only once closed; whoever still waits on ready() hears it there.
  connection.catch(() => undefined);

  function watch(c: NatsConnection): void {
    void (async () => {
      for await (const s of c.status()) {
        if (s.type === "disconnect") logger.warn({ server: s.server }, "NATS connection lost; reconnecting");
        if (s.type === "reconnect") {
          logger.info({ server: s.server }, "NATS connection back");
          // The server may have come back without its store: check the stream again.
          streamReady = undefined;
        }
      }
    })();
  }

  async function ensureStream(jsm: JetStreamManager): Promise<void> {
    const config: Partial<StreamConfig> & { name: string } = {
      name: stream,
      subjects: [`${prefix}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(duplicateWindowMs),
      max_age: nanos(maxAgeMs),
      num_replicas: 1,
    };
    try {
      const info = await jsm.streams.info(stream);
      const c = info.config;
      if (c.duplicate_window !== config.duplicate_window || c.max_age !== config.max_age || !c.subjects?.includes(`${prefix}.>`)) {
        await jsm.streams.update(stream, { duplicate_window: config.duplicate_window, max_age: config.max_age, subjects: [...new Set([...(c.subjects ?? []), `${prefix}.>`])] });
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      await jsm.streams.add(config);
      logger.info({ stream, subjects: config.subjects }, "created the event stream");
    }
  }

  async function ready(timeoutMs = publishTimeoutMs): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`NATS not reachable at ${servers.join(",")} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([connection, deadline]);
      if (closed || !clients) throw new Error("event bus closed");
      const { jsm } = clients;
      streamReady ??= ensureStream(jsm).catch((err: unknown) => {
        streamReady = undefined;
        throw err;
      });
      await Promise.race([streamReady, deadline]);
      return clients;
    } finally {
      clearTimeout(timer);
    }
  }

  const link: JetStreamLink = {
    stream,
    logger,
    ready,
    subjectFor: (type) => `${prefix}.${type}`,
    // Durable names may not contain "." (nor "*", ">", spaces).
    durableFor: (service, type) => `${service}_${type}`.replace(/[.*> ]/g, "_"),
    recordOf(m) {
      const h = m.headers;
      const own: Record<string, string> = {};
      for (const key of h?.keys() ?? []) {
        if (/^(nats|shop)-/i.test(key)) continue;
        own[key] = h!.get(key);
      }
      return {
        // An event published by hand without a message id still gets a stable one.
        id: h?.get(MSG_ID_HEADER) || `${stream}:${m.seq}`,
        type: h?.get(TYPE_HEADER) || m.subject.slice(prefix.length + 1),
        payload: m.data,
        headers: own,
        occurredAt: h?.get(OCCURRED_HEADER) || m.time.toISOString(),
        source: h?.get(SOURCE_HEADER) || "unknown",
      };
    },
    get closed() {
      return closed;
    },
  };

  function envelope(e: EventRecord): MsgHdrs {
    const h = natsHeaders();
    for (const [key, value] of Object.entries(e.headers)) h.set(key, value);
    h.set(TYPE_HEADER, e.type);
    h.set(SOURCE_HEADER, e.source);
    h.set(OCCURRED_HEADER, e.occurredAt);
    return h;
  }

  return {
    kind: "jetstream",
    stream,
    async publish(events) {
      if (events.length === 0) return;
      const { js } = await ready();
      // Sent back to back on one connection, so stored in this order;
      // resolved only when the server acknowledged every one.
      const acks = await Promise.all(events.map((e) => js.publish(link.subjectFor(e.type), e.payload, { msgID: e.id, headers: envelope(e), timeout: publishTimeoutMs })));
      const duplicates = acks.filter((a) => a.duplicate).length;
      if (duplicates > 0) logger.debug({ duplicates }, "events already in the stream; the duplicate window dropped them");
    },
    consumer(handling, consumerOptions = {}) {
      return createJetStreamConsumer(link, handling, consumerOptions);
    },
    async backlog(service, types) {
      const { jsm } = await ready();
      let total = 0;
      for (const type of types) {
        try {
          const info = await jsm.consumers.info(stream, link.durableFor(service, type));
          total += info.num_pending + info.num_ack_pending;
        } catch (err) {
          if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
        }
      }
      return total;
    },
    async close() {
      if (closed) return;
      closed = true;
      stopWaiting();
      if (nc && !nc.isClosed()) {
        // Acks still buffered in the client are sent before the socket closes.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([nc.flush().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
        clearTimeout(timer);
        await nc.close();
      }
    },
  };
}

// A service's consumer on JetStream: per event type it handles, one durable
// pull consumer named after the service and the type (nats-server 2.9 filters
// a consumer on one subject only), with explicit acks. Each message runs
// through the shared event handling:
//
//   already handled or dead in the inbox ─► ack (a redelivery, or a second publish)
//   handler + "handled" committed together ─► ack
//   failed ─► failure recorded in the inbox ─► nak with the backoff delay
//   RetryLater ─► nak with a short delay; the inbox keeps attempts unchanged
//   attempts used up, undecodable, or JetStream's last delivery ─► dead letter ─► ack
//
// A dead event is acked, not termed: the dead letter in the service's own
// database is the record of its failure, and nats-server 2.9 keeps a termed
// message in the consumer's num_ack_pending (and its ack floor behind it).
//
// Attempts are counted in the consumer's inbox row, not by JetStream's
// delivery count, because a RetryLater (and a redelivery after a crash or an
// expired ack wait) is a delivery that must not spend an attempt. max_deliver
// is a backstop above maxAttempts plus the deliveries RetryLater's window can
// take; the delivery that reaches it dead-letters on any failure, so an event
// never just stops being delivered without a dead letter.
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, ReplayPolicy } from "@nats-io/jetstream";
import type { ConsumerConfig, ConsumerMessages, Consumer as PullConsumer, JsMsg } from "@nats-io/jetstream";
import type { Consumer } from "./consumer.ts";
import { retryLaterDelayMs } from "./event-handling.ts";
import type { EventHandling } from "./event-handling.ts";
import type { JetStreamLink } from "./jetstream-bus.ts";

export interface JetStreamConsumerOptions {
  /** Events of one type handled at once. Default 8. */
  concurrency?: number;
  /**
   * How long JetStream waits for an ack before it delivers the event again.
   * A handler still running tells it to keep waiting every ackWaitMs / 3, so
   * this bounds only how soon a crashed consumer's events come back. Default
   * EVENT_ACK_WAIT_MS, then 10 s.
   */
  ackWaitMs?: number;
  /** JetStream's delivery limit. Default maxAttempts + the deliveries RetryLater's window can take + 10. */
  maxDeliver?: number;
  /** Unacknowledged events per durable (in flight and waiting for redelivery). Default 10,000. */
  maxAckPending?: number;
  /** How long one pull request waits for events. Default 5 s. */
  pullExpiresMs?: number;
  /**
   * On stop, how long a pull request that events are on their way to may
   * still take them (to nak them at once rather than leave them to ack wait).
   * Default 250 ms.
   */
  stopGraceMs?: number;
}

/** A pull request still open, and whether events are likely on their way to it. */
interface OpenPull {
  readonly batch: ConsumerMessages;
  readonly finished: Promise<void>;
  expecting(): boolean;
}

const nanos = (ms: number) => Math.round(ms * 1_000_000);

/** Deliveries RetryLater can take before its window closes, with retryLaterDelayMs between them. */
function retryLaterDeliveries(windowMs: number): number {
  let n = 0;
  for (let waited = 0; waited < windowMs; waited += retryLaterDelayMs(waited)) n++;
  return n;
}

export function createJetStreamConsumer(link: JetStreamLink, handling: EventHandling, options: JetStreamConsumerOptions = {}): Consumer {
  const { name } = handling;
  const logger = link.logger.child({ consumer: name });
  const concurrency = options.concurrency ?? 8;
  const ackWaitMs = options.ackWaitMs ?? Number(process.env.EVENT_ACK_WAIT_MS ?? 10_000);
  const maxDeliver = options.maxDeliver ?? handling.maxAttempts + retryLaterDeliveries(handling.retryLaterWindowMs) + 10;
  const maxAckPending = options.maxAckPending ?? 10_000;
  const pullExpiresMs = Math.max(1000, options.pullExpiresMs ?? 5000);
  const active = new Set<Promise<void>>();
  const pullers: Array<Promise<void>> = [];
  const stopGraceMs = options.stopGraceMs ?? 250;
  const pulls = new Set<OpenPull>();
  let running = false;
  let stopped: () => void = () => {};
  const stopping = new Promise<void>((resolve) => (stopped = resolve));

  const sleep = (ms: number) => Promise.race([new Promise<void>((r) => setTimeout(r, ms).unref()), stopping]);

  async function durable(type: string): Promise<PullConsumer> {
    const { js, jsm } = await link.ready();
    const durableName = link.durableFor(name, type);
    const config: Partial<ConsumerConfig> = {
      durable_name: durableName,
      filter_subject: link.subjectFor(type),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ackWaitMs),
      max_deliver: maxDeliver,
      max_ack_pending: maxAckPending,
      // A service's first start takes every event still in the stream: events
      // published before its consumer existed are not lost.
      deliver_policy: DeliverPolicy.All,
      replay_policy: ReplayPolicy.Instant,
    };
    try {
      const info = await jsm.consumers.info(link.stream, durableName);
      const c = info.config;
      if (c.ack_wait !== config.ack_wait || c.max_deliver !== config.max_deliver || c.max_ack_pending !== config.max_ack_pending) {
        await jsm.consumers.update(link.stream, durableName, { ack_wait: config.ack_wait, max_deliver: config.max_deliver, max_ack_pending: config.max_ack_pending });
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await jsm.consumers.add(link.stream, config);
    }
    return js.consumers.get(link.stream, durableName);
  }

  /** One type's loop: pull as many events as there are free slots, handle each as it arrives. */
  async function pull(type: string): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    let consumer: PullConsumer | undefined;
    let failures = 0;
    // Events the durable held after the last one delivered here (JetStream tells with each).
    let backlog = 0;
    while (running) {
      try {
        consumer ??= await durable(type);
        if (inFlight.size >= concurrency) await Promise.race([Promise.race(inFlight), stopping]);
        if (!running) break;
        const batch = await consumer.fetch({ max_messages: concurrency - inFlight.size, expires: pullExpiresMs });
        const pulledAt = Date.now();
        let received = 0;
        let finish: () => void = () => {};
        const open: OpenPull = { batch, finished: new Promise((r) => (finish = r)), expecting: () => backlog > 0 };
        pulls.add(open);
        try {
          for await (const m of batch) {
            received++;
            backlog = m.info.pending;
            if (!running) {
              settle(m, "nak", () => m.nak());
              continue;
            }
            const job = deliver(m).finally(() => {
              inFlight.delete(job);
              active.delete(job);
            });
            inFlight.add(job);
            active.add(job);
          }
        } finally {
          pulls.delete(open);
          finish();
        }
        // A pull that ends at once with nothing (the connection went away
        // under it) must not turn this loop into a spin.
        if (received === 0 && Date.now() - pulledAt < 100) await sleep(100);
        failures = 0;
      } catch (err) {
        if (!running) break;
        failures++;
        // The consumer may be gone (server restarted without its store): make sure of it again.
        consumer = undefined;
        if (failures === 1 || failures % 20 === 0) logger.warn({ err, type, failures }, "cannot pull events from JetStream; retrying");
        await sleep(Math.min(5000, 100 * 2 ** failures));
      }
    }
  }

  async function deliver(m: JsMsg): Promise<void> {
    const heartbeat = setInterval(() => settle(m, "working", () => m.working()), ackWaitMs / 3);
    try {
      const event = link.recordOf(m);
      const state = await handling.state(event.id);
      // handled or dead: a redelivery or a second publish. pending: an
      // operator put the dead letter back; the inbox worker owns it now.
      if (state && state.status !== "retrying") return settle(m, "ack", () => m.ack());
      const outcome = await handling.handle({
        event,
        attempts: state?.attempts ?? 0,
        receivedAt: state?.receivedAt ?? Date.now(),
        last: m.info.deliveryCount >= maxDeliver,
      });
      if (outcome.kind === "retry") settle(m, "nak", () => m.nak(Math.round(outcome.delayMs)));
      else settle(m, "ack", () => m.ack());
    } catch (err) {
      // The bookkeeping itself failed (the database is unavailable):
      // nothing was recorded, JetStream delivers the event again.
      logger.error({ err, seq: m.seq }, "event bookkeeping failed; JetStream will deliver it again");
      settle(m, "nak", () => m.nak(1000));
    } finally {
      clearInterval(heartbeat);
    }
  }

  function settle(m: JsMsg, what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // The connection is closed: the ack is lost and JetStream delivers the
      // event again after ack wait; the inbox makes that a no-op.
      logger.warn({ err, seq: m.seq, what }, "cannot answer JetStream for an event");
    }
  }

  return {
    name,
    types: handling.types,
    start() {
      if (running) return;
      running = true;
      for (const type of handling.types) pullers.push(pull(type));
    },
    kick() {},
    async stop() {
      if (!running) return;
      running = false;
      stopped();
      // An event the server already sent to an open pull request would be
      // lost on the way if the request were dropped now, and come back only
      // after ack wait: where events are flowing, let the request take them
      // (they are nak'd at once) for a moment. Requests dropped then are
      // forgotten by the server, which sees nobody listens.
      const flowing = [...pulls].filter((p) => p.expecting());
      if (flowing.length > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([Promise.all(flowing.map((p) => p.finished)), new Promise<void>((r) => (timer = setTimeout(r, stopGraceMs)))]);
        clearTimeout(timer);
      }
      for (const p of pulls) p.batch.stop();
      await Promise.all(pullers);
      await Promise.all(active);
    },
  };
}

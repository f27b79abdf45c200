// mesh.v1.EventAdminService for the whole mesh, from every instance's own.
// Each process answers about the consumers and outboxes of the services it
// runs (one service per mesh instance, and its consumer is named after it);
// an aggregator asks every instance and merges, as merge.ts does for
// OpsService.
//
// The replicas of one service share that service's database (and its durable
// JetStream consumers), so two replicas report the same dead letters and the
// same backlog: within one service answers are deduplicated (dead letters by
// consumer and event id) or the larger count is kept (a backlog read a moment
// later); across services, counts add up.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import type { DeadLetter, GetEventBacklogResponse, GetEventBacklogResponseSchema, ListDeadLettersResponse } from "../../gen/mesh/v1/events_pb.js";
import { instancesFrom } from "./merge.ts";
import type { InstanceSource } from "./merge.ts";

export interface EventAdminInstance {
  /** How errors name it: "orders-1". */
  readonly name: string;
  /** The topology service it runs ("orders"): the name of its consumer and of its outbox's source. */
  readonly service: string;
  readonly client: Client<typeof EventAdminService>;
}

const DEFAULT_DEAD_LETTERS = 50;

/** The dead letters of every answer, each once, the most recent failures first. */
export function mergeDeadLetters(answers: readonly ListDeadLettersResponse[], limit: number): DeadLetter[] {
  const byId = new Map<string, DeadLetter>();
  for (const a of answers) {
    for (const d of a.deadLetters) {
      const id = `${d.consumer}\u0000${d.eventId}`;
      const known = byId.get(id);
      if (!known || failedMs(d) > failedMs(known)) byId.set(id, d);
    }
  }
  return [...byId.values()].sort((a, b) => failedMs(b) - failedMs(a)).slice(0, limit);
}

const failedMs = (d: DeadLetter) => (d.failedAt ? timestampMs(d.failedAt) : 0);

/**
 * One backlog from the answers of several instances, each with the service
 * it runs: per source and per consumer, the largest count among the replicas
 * of one service (they read the same tables), summed over services.
 */
export function mergeEventBacklogs(answers: ReadonlyArray<{ service: string; backlog: GetEventBacklogResponse }>): MessageInitShape<typeof GetEventBacklogResponseSchema> {
  // name -> service -> counts
  const sources = new Map<string, Map<string, { unpublished: number }>>();
  const consumers = new Map<string, Map<string, { pending: number; dead: number }>>();
  const slot = <V>(map: Map<string, Map<string, V>>, name: string, service: string, empty: V): V => {
    let perService = map.get(name);
    if (!perService) map.set(name, (perService = new Map()));
    let value = perService.get(service);
    if (!value) perService.set(service, (value = empty));
    return value;
  };
  for (const { service, backlog } of answers) {
    for (const s of backlog.sources) {
      const v = slot(sources, s.source, service, { unpublished: 0 });
      v.unpublished = Math.max(v.unpublished, s.unpublished);
    }
    for (const c of backlog.consumers) {
      const v = slot(consumers, c.consumer, service, { pending: 0, dead: 0 });
      v.pending = Math.max(v.pending, c.pending);
      v.dead = Math.max(v.dead, c.dead);
    }
  }
  const sum = <V extends Record<string, number>>(perService: Map<string, V>, key: keyof V) => [...perService.values()].reduce((n, v) => n + v[key], 0);
  return {
    sources: [...sources].map(([source, perService]) => ({ source, unpublished: sum(perService, "unpublished") })),
    consumers: [...consumers].map(([consumer, perService]) => ({ consumer, pending: sum(perService, "pending"), dead: sum(perService, "dead") })),
  };
}

/** The answers of the instances that answered; UNAVAILABLE, naming why, when none did. */
async function askAll<T>(instances: readonly EventAdminInstance[], ask: (i: EventAdminInstance) => Promise<T>): Promise<Array<{ instance: EventAdminInstance; answer: T }>> {
  const settled = await Promise.allSettled(instances.map(async (instance) => ({ instance, answer: await ask(instance) })));
  const answers = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  if (answers.length === 0 && settled.length > 0) {
    const first = settled.find((s) => s.status === "rejected")!.reason as unknown;
    throw new ConnectError(`no instance answered (${instances[0].name}: ${ConnectError.from(first).message})`, Code.Unavailable);
  }
  return answers;
}

/** Failures the next replica would answer alike: the request or the caller is wrong, not the instance. */
const final = new Set([Code.InvalidArgument, Code.Unauthenticated, Code.PermissionDenied]);

/**
 * EventAdminService for the whole mesh. ListDeadLetters and GetEventBacklog
 * ask every instance (those of one consumer only, when the request names
 * one) and merge; an instance that does not answer is left out.
 * RetryDeadLetter goes to the replicas of the consumer's service, one after
 * the other, until one has put the event back.
 */
export function createEventAdminAggregator(source: InstanceSource<EventAdminInstance>): ServiceImpl<typeof EventAdminService> {
  return {
    async listDeadLetters(req) {
      const instances = (await instancesFrom(source)).filter((i) => !req.consumer || i.service === req.consumer);
      const answers = await askAll(instances, (i) => i.client.listDeadLetters(req));
      return { deadLetters: mergeDeadLetters(answers.map((a) => a.answer), req.pageSize > 0 ? req.pageSize : DEFAULT_DEAD_LETTERS) };
    },

    async getEventBacklog(req) {
      const answers = await askAll(await instancesFrom(source), (i) => i.client.getEventBacklog(req));
      return mergeEventBacklogs(answers.map((a) => ({ service: a.instance.service, backlog: a.answer })));
    },

    async retryDeadLetter(req) {
      const all = await instancesFrom(source);
      const hosts = all.filter((i) => i.service === req.consumer);
      if (hosts.length === 0) {
        const known = [...new Set(all.map((i) => i.service))].join(", ");
        throw new ConnectError(`no instance runs the consumer ${req.consumer} (consumers are named after their service: ${known})`, Code.NotFound);
      }
      const failures: Array<{ instance: EventAdminInstance; error: ConnectError }> = [];
      for (const instance of hosts) {
        try {
          await instance.client.retryDeadLetter(req);
          return {};
        } catch (err) {
          const error = ConnectError.from(err);
          if (final.has(error.code)) throw error;
          failures.push({ instance, error });
        }
      }
      // A replica that answered NOT_FOUND says more than one that did not answer.
      const telling = failures.find((f) => f.error.code === Code.NotFound) ?? failures[0];
      throw new ConnectError(`${telling.instance.name}: ${telling.error.rawMessage}`, telling.error.code);
    },
  };
}

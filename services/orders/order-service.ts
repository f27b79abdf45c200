// The OrderService handlers. Field rules (required, formats, ranges) already
// ran in the platform from the contract; what is checked here is what the
// rules cannot say: SKUs not repeated, whose order it is, and its status.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { codeName, pageToken, requireCaller, requireUser } from "@shop/platform";
import type { Logger, Principal, ServiceEvents } from "@shop/platform";
import type { CatalogService, QuotePriceResponse } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { OrderCreatedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import type { CreateOrderRequest, OrderService } from "../../gen/shop/orders/v1/orders_pb.js";
import { isFinal, money, repeatedSku, requestFingerprint, toOrder, toOrderItem } from "./order.ts";
import { newOrderId } from "./order-id.ts";
import type { OrderTransitions } from "./order-transitions.ts";
import { followOrder } from "./status-changes.ts";
import type { OrderStatusChanges } from "./status-changes.ts";
import type { OrderPosition, OrderRecord, OrderStore } from "./store.ts";

export interface OrderServiceDeps {
  store: OrderStore;
  transitions: OrderTransitions;
  changes: OrderStatusChanges;
  events: ServiceEvents;
  catalog: Client<typeof CatalogService>;
  logger: Logger;
  /** How often WatchOrder re-reads an order when no change was announced in this process. */
  watchPollMs: number;
}

/** The quote is a read on the order's critical path: it gets its own short deadline. */
const QUOTE_TIMEOUT_MS = 1000;
const DEFAULT_CANCEL_REASON = "cancelled by customer";

const notFound = (orderId: string) => new ConnectError(`order ${orderId} not found`, Code.NotFound);

export function createOrderService(deps: OrderServiceDeps): ServiceImpl<typeof OrderService> {
  const { store, transitions, changes, events, catalog, logger, watchPollMs } = deps;

  /** A user sees only their own orders (another's is NOT_FOUND, like a missing one); a service sees any. */
  async function visibleOrder(orderId: string, caller: Principal): Promise<OrderRecord> {
    const order = await store.byId(orderId);
    if (!order || (caller.kind === "user" && order.userId !== caller.subject)) throw notFound(orderId);
    return order;
  }

  function sameRequest(order: OrderRecord, fingerprint: string): OrderRecord {
    if (order.requestFingerprint !== fingerprint) {
      throw new ConnectError(
        `idempotency_key ${JSON.stringify(order.idempotencyKey)} was already used for a different order (${order.orderId}); use a new key for a new order`,
        Code.AlreadyExists,
      );
    }
    return order;
  }

  async function quote(req: CreateOrderRequest): Promise<QuotePriceResponse> {
    try {
      return await catalog.quotePrice({ items: req.items.map(({ sku, quantity }) => ({ sku, quantity })) }, { timeoutMs: QUOTE_TIMEOUT_MS });
    } catch (err) {
      const cause = ConnectError.from(err);
      if (cause.code === Code.NotFound) throw new ConnectError(cause.rawMessage, Code.NotFound);
      // Whatever else went wrong on the catalog's side (down, slow, not
      // reachable from here) is a transient failure of this call to the client.
      logger.warn({ code: codeName(cause.code), err: cause.rawMessage }, "catalog quote failed");
      throw new ConnectError("catalog unavailable, try again", Code.Unavailable);
    }
  }

  return {
    async createOrder(req) {
      const userId = requireUser();
      const repeated = repeatedSku(req.items);
      if (repeated) {
        throw new ConnectError(`invalid request: items[${repeated.index}].sku: ${repeated.sku} is already in the order; list each SKU once`, Code.InvalidArgument);
      }
      const fingerprint = requestFingerprint(req.items, req.paymentMethod);
      const earlier = await store.byIdempotencyKey(userId, req.idempotencyKey);
      if (earlier) return { order: toOrder(sameRequest(earlier, fingerprint)) };

      const priced = await quote(req);
      const currency = priced.total?.currencyCode ?? "";
      const { orderId, createdAt } = newOrderId();
      const now = createdAt.toISOString();
      const order: OrderRecord = {
        orderId,
        userId,
        status: "PENDING",
        items: priced.lines.map((l) => ({
          sku: l.sku,
          name: l.name,
          quantity: l.quantity,
          unitPriceMinor: l.unitPrice?.unitsMinor ?? 0n,
          lineTotalMinor: l.lineTotal?.unitsMinor ?? 0n,
        })),
        totalMinor: priced.total?.unitsMinor ?? 0n,
        currency,
        paymentMethod: req.paymentMethod,
        paymentId: "",
        cancelReason: "",
        idempotencyKey: req.idempotencyKey,
        requestFingerprint: fingerprint,
        createdAt: now,
        updatedAt: now,
      };
      // A concurrent request with the same key may have inserted first: the
      // unique (user_id, idempotency_key) decides, and only the winner emits.
      const created = await events.transaction(async (tx, emit) => {
        if (!(await store.insert(tx, order))) return false;
        await emit(OrderCreatedSchema, {
          orderId,
          userId,
          items: order.items.map((line) => toOrderItem(line, currency)),
          total: money(currency, order.totalMinor),
          paymentMethod: order.paymentMethod,
        });
        return true;
      });
      if (created) {
        logger.info({ order_id: orderId, user_id: userId, total_minor: String(order.totalMinor) }, "order created");
        return { order: toOrder(order) };
      }
      const winner = await store.byIdempotencyKey(userId, req.idempotencyKey);
      if (!winner) throw new ConnectError("order vanished after a concurrent create; try again", Code.Aborted);
      return { order: toOrder(sameRequest(winner, fingerprint)) };
    },

    async getOrder(req) {
      return { order: toOrder(await visibleOrder(req.orderId, requireCaller())) };
    },

    async listOrders(req) {
      const userId = requireUser();
      const size = pageToken.size(req.pageSize);
      const after = pageToken.decode<OrderPosition>(req.pageToken, ["createdAt", "orderId"]);
      const rows = await store.listForUser(userId, after, size);
      const more = rows.length > size;
      const shown = more ? rows.slice(0, size) : rows;
      const last = shown[shown.length - 1];
      return {
        orders: shown.map(toOrder),
        nextPageToken: more ? pageToken.encode({ createdAt: last.createdAt, orderId: last.orderId }) : "",
      };
    },

    async cancelOrder(req) {
      const userId = requireUser();
      const reason = req.reason.trim() || DEFAULT_CANCEL_REASON;
      const result = await events.transaction(async (tx, emit) => {
        const order = await store.byId(req.orderId, tx);
        if (!order || order.userId !== userId) throw notFound(req.orderId);
        return transitions.cancel(tx, emit, req.orderId, reason);
      });
      const order = result.order!;
      if (result.changed) {
        changes.changed(order.orderId);
        logger.info({ order_id: order.orderId, reason }, "order cancelled by the customer");
      } else if (order.status === "CONFIRMED") {
        throw new ConnectError(`order ${order.orderId} is already confirmed and can no longer be cancelled`, Code.FailedPrecondition);
      }
      return { order: toOrder(order) };
    },

    async *watchOrder(req, ctx) {
      const caller = requireCaller();
      // Follow before the first read, so a change right after it is not missed.
      const follow = followOrder(changes, req.orderId, watchPollMs, ctx.signal);
      try {
        let current = await visibleOrder(req.orderId, caller);
        yield { order: toOrder(current) };
        while (!isFinal(current.status)) {
          await follow.next();
          if (ctx.signal.aborted) return;
          const latest = await store.byId(req.orderId);
          if (!latest) throw notFound(req.orderId);
          if (latest.status !== current.status) yield { order: toOrder(latest) };
          current = latest;
        }
      } finally {
        follow.close();
      }
    },
  };
}

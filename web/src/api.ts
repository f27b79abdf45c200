// The only way this app talks to the backend: clients generated from the
// protos, over the Connect protocol (JSON on HTTP/1.1 or h2, same origin).
//
// Two transports here, by who speaks: nobody (public methods: a stale shopper
// token must not break browsing the catalog) and the signed-in shopper; the
// console has its own (console/operator-clients.ts), loaded with it. Every call starts a W3C trace: the browser picks
// the trace id, so a page can link an order to its trace in the console and
// an error can quote the trace an operator would look up.
import { ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { NotificationService } from "../../gen/shop/notifications/v1/notifications_pb.js";
import { OrderService } from "../../gen/shop/orders/v1/orders_pb.js";
import { StorefrontService } from "../../gen/shop/storefront/v1/storefront_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { currentSession } from "./session.ts";

const traceOfError = new WeakMap<object, string>();

/** The trace id of the call that failed with this error, when known. */
export function traceIdOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null ? traceOfError.get(err) : undefined;
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A fresh trace: pass `headers` with a call to know its trace id up front. */
export function newTrace(): { traceId: string; headers: { traceparent: string } } {
  const traceId = randomHex(16);
  return { traceId, headers: { traceparent: `00-${traceId}-${randomHex(8)}-01` } };
}

export const tracing: Interceptor = (next) => async (req) => {
  if (!req.header.has("traceparent")) req.header.set("traceparent", newTrace().headers.traceparent);
  const traceId = req.header.get("traceparent")!.split("-")[1];
  try {
    return await next(req);
  } catch (err) {
    if (typeof err === "object" && err !== null) traceOfError.set(err, traceId);
    throw err;
  }
};

export const bearer =
  (token: () => string | undefined): Interceptor =>
  (next) =>
  (req) => {
    const t = token();
    if (t) req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };

export const baseUrl = location.origin;
const publicTransport = createConnectTransport({ baseUrl, interceptors: [tracing] });
const shopperTransport = createConnectTransport({ baseUrl, interceptors: [tracing, bearer(() => currentSession()?.token)] });

export const catalog = createClient(CatalogService, publicTransport);
export const accounts = createClient(UserService, publicTransport);
export const storefrontPublic = createClient(StorefrontService, publicTransport);
export const storefront = createClient(StorefrontService, shopperTransport);
export const orders = createClient(OrderService, shopperTransport);
export const notifications = createClient(NotificationService, shopperTransport);

/** True for the abort a page causes when the user navigates away. */
export function isNavigationAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted && (err instanceof ConnectError || (err instanceof DOMException && err.name === "AbortError"));
}

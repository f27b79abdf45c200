// The example request of each documented method and what it answers when run
// as printed against a fresh `make run` (seeded catalog and stock), in the
// order the reference page lists them (a SignUp before the Login that uses
// it). test/contracts/openapi.test.ts runs every example with real curl and
// holds each to its `answers`: "ok" is HTTP 200 with the response message,
// anything else the Connect error code. Methods that need a token answer
// `unauthenticated` without one; `answers` is what they answer with one.
// A method missing here gets a request made from its field rules
// (openapi.ts requestFromRules) and is only held to answering JSON.
import type { Example } from "./openapi.ts";

/** A UUID no order, reservation or event has: what the examples that need an existing id send. */
export const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

const examples: Record<string, Example> = {
  "/shop.users.v1.UserService/SignUp": {
    body: { email: "ada@example.com", password: "correct horse", displayName: "Ada" },
    answers: "ok",
    note: "Once per email: a second time it answers already_exists.",
  },
  "/shop.users.v1.UserService/Login": {
    body: { email: "ada@example.com", password: "correct horse" },
    answers: "ok",
    note: "After the SignUp above. Its token is what the methods below marked \"token\" take.",
  },
  "/shop.users.v1.UserService/GetProfile": { body: {}, answers: "ok" },
  "/shop.users.v1.UserService/UpdateProfile": { body: { displayName: "Ada Lovelace" }, answers: "ok" },

  "/shop.catalog.v1.CatalogService/GetProduct": { body: { sku: "hand-grinder" }, answers: "ok" },
  "/shop.catalog.v1.CatalogService/ListProducts": { body: { pageSize: 3 }, answers: "ok" },
  "/shop.catalog.v1.CatalogService/SearchProducts": { body: { query: "tea" }, answers: "ok" },
  "/shop.catalog.v1.CatalogService/QuotePrice": {
    body: { items: [{ sku: "hand-grinder", quantity: 1 }, { sku: "latte-mug", quantity: 2 }] },
    answers: "ok",
  },

  "/shop.inventory.v1.InventoryService/GetStock": { body: { sku: "hand-grinder" }, answers: "ok" },
  "/shop.inventory.v1.InventoryService/ReserveStock": {
    body: { reservationId: "6f1c2b7e-3d4a-4c5b-9e8f-0a1b2c3d4e5f", orderId: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", items: [{ sku: "latte-mug", quantity: 1 }], ttlSeconds: 60 },
    answers: "ok",
    note: "Holds one latte mug for a minute; the same reservationId again returns the same reservation.",
  },
  "/shop.inventory.v1.InventoryService/CommitReservation": {
    body: { reservationId: UNKNOWN_ID },
    answers: "not_found",
    note: "As printed no such reservation exists: put the reservationId of a held one.",
  },
  "/shop.inventory.v1.InventoryService/ReleaseReservation": {
    body: { reservationId: UNKNOWN_ID, reason: "changed my mind" },
    answers: "not_found",
    note: "As printed no such reservation exists: put the reservationId of a held one.",
  },
  "/shop.inventory.v1.InventoryService/GetReservation": {
    body: { reservationId: "6f1c2b7e-3d4a-4c5b-9e8f-0a1b2c3d4e5f" },
    answers: "ok",
    note: "The reservation the ReserveStock example made.",
  },

  "/shop.orders.v1.OrderService/CreateOrder": {
    body: { idempotencyKey: "docs-example-1", items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" },
    answers: "ok",
    note: "Repeating it with the same idempotencyKey returns the same order.",
  },
  "/shop.orders.v1.OrderService/GetOrder": {
    body: { orderId: UNKNOWN_ID },
    answers: "not_found",
    note: "As printed no such order exists: put an orderId from CreateOrder or ListOrders.",
  },
  "/shop.orders.v1.OrderService/ListOrders": { body: { pageSize: 5 }, answers: "ok" },
  "/shop.orders.v1.OrderService/CancelOrder": {
    body: { orderId: UNKNOWN_ID, reason: "changed my mind" },
    answers: "not_found",
    note: "As printed no such order exists: put the orderId of a PENDING order.",
  },

  "/shop.notifications.v1.NotificationService/ListNotifications": { body: { pageSize: 5 }, answers: "ok" },

  "/shop.storefront.v1.StorefrontService/GetProfilePage": { body: {}, answers: "ok" },
  "/shop.storefront.v1.StorefrontService/GetProductPage": { body: { sku: "hand-grinder" }, answers: "ok" },

  "/shop.orders.v1.OrderService/WatchOrder": {
    body: { orderId: UNKNOWN_ID },
    answers: "not_found",
    note: "As printed no such order exists: put an orderId from CreateOrder. A server stream: one message per status change until the order is final.",
  },

  "/grpc.health.v1.Health/Check": {
    body: {},
    headers: { "x-shop-service": "catalog" },
    answers: "ok",
    note: "The overall health (an empty service name). The edge needs x-shop-service to pick the service whose instances answer; make run ignores it.",
  },
  "/grpc.health.v1.Health/List": {
    body: {},
    headers: { "x-shop-service": "catalog" },
    answers: "ok",
    note: "Every gRPC service name with its status.",
  },

  "/mesh.v1.EventAdminService/ListDeadLetters": { body: { pageSize: 10 }, answers: "ok" },
  "/mesh.v1.EventAdminService/RetryDeadLetter": {
    body: { consumer: "payments", eventId: UNKNOWN_ID },
    answers: "not_found",
    note: "As printed there is no such dead letter: put a consumer and eventId from ListDeadLetters.",
  },
  "/mesh.v1.EventAdminService/GetEventBacklog": { body: {}, answers: "ok" },
  "/mesh.v1.OpsService/GetSystemMap": { body: {}, answers: "ok" },
  "/mesh.v1.OpsService/GetMethodStats": { body: {}, answers: "ok" },
  "/mesh.v1.OpsService/ListRecentTraces": { body: { pageSize: 5 }, answers: "ok" },
  "/mesh.v1.OpsService/GetTrace": {
    body: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736" },
    answers: "not_found",
    note: "As printed no such trace is held: put a traceId from ListRecentTraces.",
  },
  "/mesh.v1.OpsService/ListLogLines": { body: { pageSize: 20 }, answers: "ok" },
};

/** The example of the method at this path ("/shop.catalog.v1.CatalogService/SearchProducts"), if one is written. */
export function exampleAt(path: string): Example | undefined {
  return examples[path];
}

/** Every path with a written example. */
export function examplePaths(): string[] {
  return Object.keys(examples);
}

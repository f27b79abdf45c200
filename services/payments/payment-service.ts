// The PaymentService handlers, for other services (the contract's audience
// is SERVICE; the platform refuses user tokens before these run). Every write
// carries an idempotency key: its first answer is kept, a repeat returns it
// without touching the provider, and the same key with a different request
// answers ALREADY_EXISTS. The provider is called outside any transaction;
// an unavailable provider answers UNAVAILABLE and records nothing, so the
// caller can retry with the same key.
import { createHash } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Emit, Queryable, ServiceEvents } from "@shop/platform";
import { PaymentCapturedSchema, PaymentRefundedSchema, PaymentVoidedSchema } from "../../gen/shop/payments/v1/events_pb.js";
import { PaymentSchema, PaymentStatus } from "../../gen/shop/payments/v1/payments_pb.js";
import type { Payment, PaymentService } from "../../gen/shop/payments/v1/payments_pb.js";
import { announceAuthorization, authorizeRequest, paymentFromAuthorization } from "./authorization.ts";
import type { GuardedProvider, OperationOutcome, Rejected, Unavailable } from "./provider-guard.ts";
import { providerKey } from "./provider-keys.ts";
import type { PaymentRecord, PaymentStatusName, PaymentStore } from "./store.ts";

export interface PaymentServiceDeps {
  store: PaymentStore;
  events: ServiceEvents;
  provider: GuardedProvider;
}

const STATUS: Record<PaymentStatusName, PaymentStatus> = {
  AUTHORIZED: PaymentStatus.AUTHORIZED,
  CAPTURED: PaymentStatus.CAPTURED,
  VOIDED: PaymentStatus.VOIDED,
  REFUNDED: PaymentStatus.REFUNDED,
  DECLINED: PaymentStatus.DECLINED,
  FAILED: PaymentStatus.FAILED,
};

export function toPaymentMessage(p: PaymentRecord): Payment {
  return create(PaymentSchema, {
    paymentId: p.paymentId,
    orderId: p.orderId,
    amount: { currencyCode: p.currency, unitsMinor: p.amountMinor },
    status: STATUS[p.status],
    declineReason: p.declineReason,
    createdAt: timestampFromDate(new Date(p.createdAt)),
    updatedAt: timestampFromDate(new Date(p.updatedAt)),
    refundedAmount: p.refundedMinor > 0n ? { currencyCode: p.currency, unitsMinor: p.refundedMinor } : undefined,
  });
}

function fingerprintOf(operation: string, request: Record<string, unknown>): string {
  const json = JSON.stringify([operation, request], (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  return createHash("sha256").update(json).digest("base64url");
}

const notFound = (paymentId: string) => new ConnectError(`payment ${paymentId} not found`, Code.NotFound);

/** Unavailable is worth retrying with the same key; a rejection is not. */
function providerFailure(outcome: Unavailable | Rejected): ConnectError {
  return new ConnectError(outcome.reason, outcome.outcome === "unavailable" ? Code.Unavailable : Code.FailedPrecondition);
}

function ensureDone(outcome: OperationOutcome): void {
  if (outcome.outcome !== "done") throw providerFailure(outcome);
}

/** An RPC write as its idempotency key sees it. */
interface Write {
  key: string;
  operation: string;
  fingerprint: string;
}

export function createPaymentService({ store, events, provider }: PaymentServiceDeps): ServiceImpl<typeof PaymentService> {
  /** The kept answer for the key, if any; ALREADY_EXISTS when the key was used for a different request. */
  async function replay(write: Write, q?: Queryable): Promise<Payment | undefined> {
    const kept = await store.keptAnswer(write.key, q);
    if (!kept) return undefined;
    if (kept.fingerprint !== write.fingerprint) {
      throw new ConnectError(`idempotency key ${write.key} was already used for a different ${kept.operation} request`, Code.AlreadyExists);
    }
    return fromBinary(PaymentSchema, kept.response);
  }

  /** Claims the key, applies the write and keeps its answer, all in one transaction. */
  function answerOnce(write: Write, paymentId: string, apply: (tx: Queryable, emit: Emit) => Promise<PaymentRecord>): Promise<Payment> {
    return events.transaction(async (tx, emit) => {
      if (!(await store.claimKey(tx, write.key, { operation: write.operation, fingerprint: write.fingerprint, paymentId }))) {
        // A concurrent call with the same key committed first.
        return (await replay(write, tx))!;
      }
      const message = toPaymentMessage(await apply(tx, emit));
      await store.keepAnswer(tx, write.key, toBinary(PaymentSchema, message));
      return message;
    });
  }

  async function existing(paymentId: string): Promise<PaymentRecord> {
    const payment = await store.paymentById(paymentId);
    if (!payment) throw notFound(paymentId);
    return payment;
  }

  const reread = async (tx: Queryable, paymentId: string) => (await store.paymentById(paymentId, tx))!;

  return {
    async authorizePayment(req) {
      const amount = req.amount!;
      if (amount.unitsMinor <= 0n) throw new ConnectError("amount.units_minor: must be positive", Code.InvalidArgument);
      if (!/^[A-Z]{3}$/.test(amount.currencyCode)) throw new ConnectError("amount.currency_code: must be an ISO 4217 code such as EUR", Code.InvalidArgument);
      const terms = { orderId: req.orderId, amountMinor: amount.unitsMinor, currency: amount.currencyCode, paymentMethod: req.paymentMethod };
      const write = { key: req.idempotencyKey, operation: "authorize", fingerprint: fingerprintOf("authorize", terms) };
      const replayed = await replay(write);
      if (replayed) return { payment: replayed };

      const prior = await store.paymentByOrder(req.orderId);
      if (prior) throw new ConnectError(`order ${req.orderId} already has payment ${prior.paymentId}`, Code.AlreadyExists);
      if ((await store.pendingOrder(req.orderId))?.cancelled) throw new ConnectError(`order ${req.orderId} was cancelled`, Code.FailedPrecondition);

      const outcome = await provider.authorize(authorizeRequest(terms));
      if (outcome.outcome === "unavailable" || outcome.outcome === "rejected") throw providerFailure(outcome);
      const payment = paymentFromAuthorization(terms, outcome);
      return {
        payment: await answerOnce(write, payment.paymentId, async (tx, emit) => {
          if (!(await store.insertPayment(tx, payment))) throw new ConnectError(`order ${req.orderId} already has a payment`, Code.AlreadyExists);
          await announceAuthorization(emit, payment);
          return payment;
        }),
      };
    },

    async capturePayment(req) {
      const write = { key: req.idempotencyKey, operation: "capture", fingerprint: fingerprintOf("capture", { paymentId: req.paymentId }) };
      const replayed = await replay(write);
      if (replayed) return { payment: replayed };
      const payment = await existing(req.paymentId);
      if (payment.status !== "CAPTURED" && payment.status !== "REFUNDED") {
        if (payment.status !== "AUTHORIZED") throw new ConnectError(`payment ${payment.paymentId} is ${payment.status}; only an AUTHORIZED payment can be captured`, Code.FailedPrecondition);
        ensureDone(await provider.capture({ idempotencyKey: providerKey.capture(payment.orderId), providerRef: payment.providerRef!, amountMinor: payment.amountMinor }));
      }
      return {
        payment: await answerOnce(write, payment.paymentId, async (tx, emit) => {
          if (await store.transition(tx, payment.paymentId, "AUTHORIZED", "CAPTURED")) {
            await emit(PaymentCapturedSchema, { orderId: payment.orderId, paymentId: payment.paymentId });
          }
          return reread(tx, payment.paymentId);
        }),
      };
    },

    async voidPayment(req) {
      const write = { key: req.idempotencyKey, operation: "void", fingerprint: fingerprintOf("void", { paymentId: req.paymentId }) };
      const replayed = await replay(write);
      if (replayed) return { payment: replayed };
      const payment = await existing(req.paymentId);
      if (payment.status !== "VOIDED") {
        if (payment.status !== "AUTHORIZED") throw new ConnectError(`payment ${payment.paymentId} is ${payment.status}; only an AUTHORIZED payment can be voided`, Code.FailedPrecondition);
        ensureDone(await provider.void({ idempotencyKey: providerKey.void(payment.orderId), providerRef: payment.providerRef! }));
      }
      return {
        payment: await answerOnce(write, payment.paymentId, async (tx, emit) => {
          if (await store.transition(tx, payment.paymentId, "AUTHORIZED", "VOIDED")) {
            await emit(PaymentVoidedSchema, { orderId: payment.orderId, paymentId: payment.paymentId });
          }
          return reread(tx, payment.paymentId);
        }),
      };
    },

    async refundPayment(req) {
      const asked = req.amount && { currency: req.amount.currencyCode, amountMinor: req.amount.unitsMinor };
      const write = { key: req.idempotencyKey, operation: "refund", fingerprint: fingerprintOf("refund", { paymentId: req.paymentId, amount: asked ?? null }) };
      const replayed = await replay(write);
      if (replayed) return { payment: replayed };
      const payment = await existing(req.paymentId);
      if (payment.status !== "CAPTURED" && payment.status !== "REFUNDED") {
        throw new ConnectError(`payment ${payment.paymentId} is ${payment.status}; only a captured payment can be refunded`, Code.FailedPrecondition);
      }
      const left = payment.amountMinor - payment.refundedMinor;
      if (asked && asked.currency !== payment.currency) {
        throw new ConnectError(`amount.currency_code: must be the payment's currency ${payment.currency}`, Code.InvalidArgument);
      }
      if (asked && asked.amountMinor <= 0n) throw new ConnectError("amount.units_minor: must be positive", Code.InvalidArgument);
      const amountMinor = asked?.amountMinor ?? left;
      if (left === 0n) throw new ConnectError(`payment ${payment.paymentId} is already fully refunded`, Code.FailedPrecondition);
      if (amountMinor > left) {
        throw new ConnectError(`refund of ${amountMinor} exceeds the ${left} left to refund of payment ${payment.paymentId}`, Code.FailedPrecondition);
      }
      ensureDone(await provider.refund({ idempotencyKey: providerKey.refund(payment.orderId, req.idempotencyKey), providerRef: payment.providerRef!, amountMinor }));
      return {
        payment: await answerOnce(write, payment.paymentId, async (tx, emit) => {
          if (!(await store.addRefund(tx, payment.paymentId, amountMinor))) {
            throw new ConnectError(`refund of ${amountMinor} exceeds what is left to refund of payment ${payment.paymentId}`, Code.FailedPrecondition);
          }
          await emit(PaymentRefundedSchema, { orderId: payment.orderId, paymentId: payment.paymentId, amount: { currencyCode: payment.currency, unitsMinor: amountMinor } });
          return reread(tx, payment.paymentId);
        }),
      };
    },

    async getPayment(req) {
      return { payment: toPaymentMessage(await existing(req.paymentId)) };
    },
  };
}

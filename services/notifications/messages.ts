// What each event tells the user: subject and body of the email. Pure
// functions of the event, so a redelivered event would say the same thing.
import type { MessageShape } from "@bufbuild/protobuf";
import type { MoneySchema } from "../../gen/shop/common/v1/money_pb.js";
import type { OrderCancelledSchema, OrderConfirmedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import type { UserRegisteredSchema } from "../../gen/shop/users/v1/events_pb.js";

export interface EmailMessage {
  subject: string;
  body: string;
}

/** The first block of a UUID: enough for a person to tell their orders apart. */
export function shortOrderId(orderId: string): string {
  return orderId.split("-")[0] || orderId;
}

/**
 * "45.90 EUR": integer minor units with as many decimals as the currency has
 * (ISO 4217 via Intl; JPY has none). Never through floating point.
 */
export function formatMoney(money: MessageShape<typeof MoneySchema>): string {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat("en", { style: "currency", currency: money.currencyCode }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    // Not a well-formed currency code: Intl cannot tell its decimals, so show it the common way, with two.
  }
  const negative = money.unitsMinor < 0n;
  const units = (negative ? -money.unitsMinor : money.unitsMinor).toString().padStart(digits + 1, "0");
  const whole = units.slice(0, units.length - digits);
  const fraction = digits > 0 ? `.${units.slice(units.length - digits)}` : "";
  return `${negative ? "-" : ""}${whole}${fraction} ${money.currencyCode}`.trim();
}

export function welcomeEmail(e: MessageShape<typeof UserRegisteredSchema>): EmailMessage {
  return {
    subject: `Welcome to the shop, ${e.displayName}`,
    body: `Hi ${e.displayName},\n\nyour account for ${e.email} is ready. You can sign in and place your first order now.`,
  };
}

export function orderConfirmedEmail(e: MessageShape<typeof OrderConfirmedSchema>): EmailMessage {
  const id = shortOrderId(e.orderId);
  const total = e.total ? ` Total: ${formatMoney(e.total)}.` : "";
  return {
    subject: `Your order ${id} is confirmed`,
    body: `Your order ${id} is confirmed: the items are reserved for you and the payment went through.${total}\n\nOrder reference: ${e.orderId}`,
  };
}

export function orderCancelledEmail(e: MessageShape<typeof OrderCancelledSchema>): EmailMessage {
  const id = shortOrderId(e.orderId);
  const reason = e.reason || "no reason was given";
  return {
    subject: `Your order ${id} was cancelled`,
    body: `Your order ${id} was cancelled: ${reason}.\n\nYou have not been charged for it.\n\nOrder reference: ${e.orderId}`,
  };
}

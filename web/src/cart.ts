// The cart lives in this browser until the order is placed. It carries the
// idempotency key of the order it will become: pressing "Place order" twice,
// or again after a network error, places one order. Changing the cart makes
// a new key, since it is then another order.

export interface CartLine {
  sku: string;
  name: string;
  quantity: number;
}

interface Cart {
  lines: CartLine[];
  idempotencyKey: string;
}

const KEY = "shop.cart";

export function readCart(): Cart {
  try {
    const c = JSON.parse(localStorage.getItem(KEY) ?? "") as Cart;
    if (Array.isArray(c.lines) && typeof c.idempotencyKey === "string") return c;
  } catch {
    // No cart yet, or one this app did not write: start afresh below.
  }
  return { lines: [], idempotencyKey: crypto.randomUUID() };
}

function write(cart: Cart): void {
  cart.idempotencyKey = crypto.randomUUID();
  localStorage.setItem(KEY, JSON.stringify(cart));
  window.dispatchEvent(new Event("shop:cart"));
}

export function addToCart(sku: string, name: string, quantity: number): void {
  const cart = readCart();
  const line = cart.lines.find((l) => l.sku === sku);
  if (line) line.quantity += quantity;
  else cart.lines.push({ sku, name, quantity });
  write(cart);
}

export function setQuantity(sku: string, quantity: number): void {
  const cart = readCart();
  cart.lines = cart.lines.flatMap((l) => (l.sku !== sku ? [l] : quantity > 0 ? [{ ...l, quantity }] : []));
  write(cart);
}

/** After an order was placed: an empty cart with a new key. */
export function emptyCart(): void {
  write({ lines: [], idempotencyKey: "" });
}

export function cartCount(): number {
  return readCart().lines.reduce((n, l) => n + l.quantity, 0);
}

import { expect } from "chai";
import { ProviderRejectedError, ProviderUnavailableError } from "./payment-provider.ts";
import { createSimulatedProvider, simulatedProviderConfigFromEnv } from "./simulated-provider.ts";

const card = (key: string, amountMinor = 1000n, paymentMethod = "pm_card_ok") => ({ idempotencyKey: key, amountMinor, currency: "EUR", paymentMethod });

async function rejectionOf(call: Promise<unknown>): Promise<Error> {
  try {
    await call;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the call to fail");
}

describe("simulated payment provider", () => {
  it("answers a repeated idempotency key with the first answer and performs each effect once", async () => {
    const provider = createSimulatedProvider({ latencyMs: 5 });
    const [first, concurrent] = await Promise.all([provider.authorize(card("authorize:a")), provider.authorize(card("authorize:a"))]);
    const again = await provider.authorize(card("authorize:a"));
    expect(first.outcome).to.equal("approved");
    expect(concurrent).to.deep.equal(first);
    expect(again).to.deep.equal(first);
    const ref = first.outcome === "approved" ? first.providerRef : "";
    await provider.capture({ idempotencyKey: "capture:a", providerRef: ref });
    await provider.capture({ idempotencyKey: "capture:a", providerRef: ref });
    expect(provider.counts()).to.include({ calls: 5, authorizations: 1, captures: 1 });
    expect(provider.calls.map((c) => c.result)).to.deep.equal(["approved", "replayed", "replayed", "done", "replayed"]);
  });

  it("declines the test payment methods, unknown ones and amounts over the limit, and remembers declines by key too", async () => {
    const provider = createSimulatedProvider({ latencyMs: 0, declineOverMinor: 5000 });
    expect(await provider.authorize(card("k1", 1000n, "pm_card_declined"))).to.deep.equal({ outcome: "declined", reason: "card declined" });
    expect(await provider.authorize(card("k2", 1000n, "pm_card_insufficient_funds"))).to.deep.equal({ outcome: "declined", reason: "insufficient funds" });
    expect(await provider.authorize(card("k3", 5001n))).to.deep.equal({ outcome: "declined", reason: "amount over limit" });
    expect((await provider.authorize(card("k4", 5000n))).outcome).to.equal("approved");
    expect(await provider.authorize(card("k5", 1000n, "visa"))).to.deep.equal({ outcome: "declined", reason: "unknown payment method" });
    expect(await provider.authorize(card("k6", 1000n, "toString"))).to.deep.equal({ outcome: "declined", reason: "unknown payment method" });
    await provider.authorize(card("k1", 1000n, "pm_card_declined"));
    expect(provider.counts()).to.include({ authorizations: 1, declines: 5 });
  });

  it("fails as unavailable with nothing done while down or failing, and answers again once configured back", async () => {
    const provider = createSimulatedProvider({ latencyMs: 0, down: true });
    expect(await rejectionOf(provider.authorize(card("k")))).to.be.instanceOf(ProviderUnavailableError).with.property("message", "connection refused");
    provider.configure({ down: false, failureRate: 1 });
    expect(await rejectionOf(provider.authorize(card("k")))).to.be.instanceOf(ProviderUnavailableError).with.property("message", "service unavailable");
    expect(provider.counts()).to.include({ calls: 2, authorizations: 0 });
    provider.configure({ failureRate: 0 });
    expect((await provider.authorize(card("k"))).outcome).to.equal("approved");
    expect(provider.counts().authorizations).to.equal(1);
  });

  it("rejects a key reused for a different request and a refund beyond what was captured", async () => {
    const provider = createSimulatedProvider({ latencyMs: 0 });
    const auth = await provider.authorize(card("k", 1000n));
    expect(await rejectionOf(provider.authorize(card("k", 2000n)))).to.be.instanceOf(ProviderRejectedError);
    const ref = auth.outcome === "approved" ? auth.providerRef : "";
    expect(await rejectionOf(provider.refund({ idempotencyKey: "r0", providerRef: ref, amountMinor: 1n }))).to.be.instanceOf(ProviderRejectedError);
    await provider.capture({ idempotencyKey: "c", providerRef: ref });
    await provider.refund({ idempotencyKey: "r1", providerRef: ref, amountMinor: 600n });
    expect(await rejectionOf(provider.refund({ idempotencyKey: "r2", providerRef: ref, amountMinor: 401n }))).to.be.instanceOf(ProviderRejectedError);
    await provider.refund({ idempotencyKey: "r3", providerRef: ref });
    expect(provider.counts()).to.include({ captures: 1, refunds: 2 });
  });

  it("reads its configuration from PAYMENT_PROVIDER_* variables and refuses values it cannot use", () => {
    expect(simulatedProviderConfigFromEnv({})).to.deep.equal({ latencyMs: 20, failureRate: 0, declineOverMinor: 500000, down: false });
    expect(
      simulatedProviderConfigFromEnv({ PAYMENT_PROVIDER_LATENCY_MS: "150", PAYMENT_PROVIDER_FAILURE_RATE: "0.25", PAYMENT_PROVIDER_DECLINE_OVER_MINOR: "9999" }),
    ).to.deep.equal({ latencyMs: 150, failureRate: 0.25, declineOverMinor: 9999, down: false });
    expect(() => simulatedProviderConfigFromEnv({ PAYMENT_PROVIDER_FAILURE_RATE: "1.5" })).to.throw(/PAYMENT_PROVIDER_FAILURE_RATE/);
    expect(() => simulatedProviderConfigFromEnv({ PAYMENT_PROVIDER_LATENCY_MS: "fast" })).to.throw(/PAYMENT_PROVIDER_LATENCY_MS/);
    expect(() => createSimulatedProvider().configure({ failureRate: -1 })).to.throw(RangeError);
  });
});

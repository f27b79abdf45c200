// The caller's identity from x-forwarded-client-cert as the mesh's inbound
// listeners set it (SANITIZE_SET with the URI), and nothing from anything else.
import { expect } from "chai";
import { parseXfcc, peerService, spiffeServiceOf, XFCC_HEADER } from "./peer-identity.ts";

const BY = "spiffe://shop.local/ns/shop/sa/payments";
const HASH = "d9c3b1a0e7f1c1f4a6b5e2d0c9f8e7d6c5b4a3928170f6e5d4c3b2a190817263";

describe("peer identity (x-forwarded-client-cert)", function () {
  it("reads the service from what an inbound sidecar sets", function () {
    const value = `By=${BY};Hash=${HASH};URI=spiffe://shop.local/ns/shop/sa/orders`;
    expect(peerService(value)).to.equal("orders");
    expect(peerService(new Headers({ [XFCC_HEADER]: value }))).to.equal("orders");
    expect(peerService(`Hash=${HASH};URI=spiffe://shop.local/ns/shop/sa/edge-backend`)).to.equal("edge-backend");
  });

  it("parses quoted values and keys in any case", function () {
    const elements = parseXfcc(`By=${BY};Subject="O=shop,CN=orders";uri=spiffe://shop.local/ns/shop/sa/orders;DNS=a;DNS=b`);
    expect(elements).to.have.length(1);
    expect(elements![0].get("subject")).to.deep.equal(["O=shop,CN=orders"]);
    expect(elements![0].get("dns")).to.deep.equal(["a", "b"]);
    expect(peerService(`Subject="CN=x;y=\\"z\\"";URI=spiffe://shop.local/ns/shop/sa/catalog`)).to.equal("catalog");
  });

  it("honours another trust domain and namespace only when asked for", function () {
    const value = "URI=spiffe://prod.example/ns/shop-prod/sa/orders";
    expect(peerService(value)).to.equal(undefined);
    expect(peerService(value, { trustDomain: "prod.example", namespace: "shop-prod" })).to.equal("orders");
    expect(spiffeServiceOf("spiffe://shop.local/ns/shop/sa/orders", { namespace: "other" })).to.equal(undefined);
  });

  it("fails closed on anything ambiguous or malformed", function () {
    const orders = "URI=spiffe://shop.local/ns/shop/sa/orders";
    for (const value of [
      undefined,
      null,
      "",
      // Two elements: a chain the mesh never sends (SANITIZE_SET sets exactly one).
      `${orders},URI=spiffe://shop.local/ns/shop/sa/edge`,
      // Two URIs in one element.
      `${orders};URI=spiffe://shop.local/ns/shop/sa/edge`,
      // No URI.
      `By=${BY};Hash=${HASH}`,
      // Not a SPIFFE ID of this mesh, or not a plain name.
      "URI=https://shop.local/ns/shop/sa/orders",
      "URI=spiffe://evil.example/ns/shop/sa/orders",
      "URI=spiffe://shop.local/ns/shop/sa/orders/extra",
      "URI=spiffe://shop.local/ns/shop/sa/",
      "URI=spiffe://shop.local/ns/shop/sa/Orders",
      // Malformed.
      'URI="spiffe://shop.local/ns/shop/sa/orders',
      "URI",
      "=spiffe://shop.local/ns/shop/sa/orders",
      'URI=spiff"e://shop.local/ns/shop/sa/orders',
    ]) {
      expect(peerService(value), String(value)).to.equal(undefined);
    }
    expect(peerService(new Headers())).to.equal(undefined);
  });
});

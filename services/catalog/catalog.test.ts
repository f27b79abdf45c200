import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { createGrpcJsClient } from "../../test/support/grpc-js-client.ts";
import { grpcurl } from "../../test/support/grpcurl.ts";
import { startTestShop } from "../../test/support/shop.ts";
import type { TestShop } from "../../test/support/shop.ts";
import { catalog } from "./index.ts";
import { seedProducts } from "./seed.ts";
import { errorOf } from "../../test/support/errors.ts";

describe("catalog service", () => {
  let t: TestShop;
  before(async () => {
    t = await startTestShop([catalog]);
  });
  after(() => t.stop());
  const client = () => t.client(CatalogService);

  it("is seeded on first start with the whole catalog, prices in integer cents", async () => {
    const { product } = await client().getProduct({ sku: "burr-grinder" });
    expect(product?.name).to.equal("Conical Burr Grinder");
    expect(product?.price?.unitsMinor).to.equal(14900n);
    expect(product?.price?.currencyCode).to.equal("EUR");
  });

  it("pages through every product exactly once in SKU order", async () => {
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await client().listProducts({ pageSize: 5, pageToken: token });
      seen.push(...page.products.map((p) => p.sku));
      token = page.nextPageToken;
      pages++;
    } while (token !== "" && pages < 20);
    expect(seen).to.deep.equal(seedProducts.map((p) => p.sku).sort());
    expect(pages).to.equal(Math.ceil(seedProducts.length / 5));
  });

  it("filters by category and searches name, description and category", async () => {
    const tea = await client().listProducts({ category: "tea" });
    expect(tea.products.map((p) => p.sku).sort()).to.deep.equal(["black-tea-assam", "chai-spice-mix", "green-tea-sencha"]);
    const found = await client().searchProducts({ query: "KETTLE" });
    expect(found.products.map((p) => p.sku)).to.include.members(["gooseneck-kettle", "descaler"]);
    const none = await client().searchProducts({ query: "100%_" });
    expect(none.products).to.have.length(0);
  });

  it("quotes a list of items at current prices", async () => {
    const quote = await client().quotePrice({ items: [{ sku: "latte-mug", quantity: 3 }, { sku: "descaler", quantity: 1 }] });
    expect(quote.lines.map((l) => [l.sku, l.lineTotal?.unitsMinor])).to.deep.equal([
      ["latte-mug", 4800n],
      ["descaler", 890n],
    ]);
    expect(quote.total?.unitsMinor).to.equal(5690n);
  });

  it("answers NOT_FOUND for unknown products, naming them", async () => {
    expect((await errorOf(client().getProduct({ sku: "no-such-thing" }))).code).to.equal(Code.NotFound);
    const err = await errorOf(client().quotePrice({ items: [{ sku: "latte-mug", quantity: 1 }, { sku: "ghost", quantity: 1 }] }));
    expect(err.code).to.equal(Code.NotFound);
    expect(err.rawMessage).to.contain("ghost");
  });

  it("answers INVALID_ARGUMENT for a made-up page token and for rule violations", async () => {
    expect((await errorOf(client().listProducts({ pageToken: "not-a-token" }))).code).to.equal(Code.InvalidArgument);
    const err = await errorOf(client().quotePrice({ items: [{ sku: "latte-mug", quantity: 0 }] }));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.rawMessage).to.contain("items[0].quantity");
    expect((await errorOf(client().listProducts({ pageSize: 500 }))).rawMessage).to.contain("page_size");
  });

  it("serves the same answers to grpcurl and to a @grpc/grpc-js client", async () => {
    const viaCurl = await grpcurl(["-plaintext", "-d", '{"sku":"tamper-58mm"}', t.address, "shop.catalog.v1.CatalogService/GetProduct"]);
    expect(viaCurl.code, viaCurl.stderr).to.equal(0);
    expect(JSON.parse(viaCurl.stdout).product.price.unitsMinor).to.equal("3100");
    const c = createGrpcJsClient(t.address);
    try {
      const res = await c.unary(CatalogService.method.getProduct, { sku: "tamper-58mm" });
      expect(res.product?.name).to.equal("Tamper 58 mm");
    } finally {
      c.close();
    }
  });
});

// Browse and search the catalog; a product's own page with its stock.
import type { Product } from "../../../gen/shop/catalog/v1/catalog_pb.js";
import { catalog, storefrontPublic } from "../api.ts";
import { addToCart } from "../cart.ts";
import { h, replace } from "../dom.ts";
import { errorBox } from "../errors.ts";
import { money } from "../format.ts";
import type { Page } from "../page.ts";
import { degradedNotice } from "./sections.ts";

const PAGE_SIZE = 12;

export const catalogPage: Page = async (main, { query, signal }) => {
  const q = query.get("q")?.trim() ?? "";
  const grid = h("div", { class: "grid", "data-testid": "products" });
  const more = h("div", { class: "more" });
  const searchBox = h("input", { type: "search", name: "query", value: q, placeholder: "Search coffee, tea, equipment…", "aria-label": "Search the catalog" });
  const search = h(
    "form",
    { class: "search", role: "search", novalidate: true, onsubmit: (e: Event) => (e.preventDefault(), (location.hash = searchBox.value.trim() ? `#/?q=${encodeURIComponent(searchBox.value.trim())}` : "#/")) },
    searchBox,
    h("button", { type: "submit" }, "Search"),
  );
  replace(main, h("h1", null, q ? `Results for “${q}”` : "Catalog"), search, grid, more);

  async function load(pageToken: string): Promise<void> {
    const res = q
      ? await catalog.searchProducts({ query: q, pageSize: PAGE_SIZE, pageToken }, { signal })
      : await catalog.listProducts({ pageSize: PAGE_SIZE, pageToken }, { signal });
    for (const p of res.products) grid.append(productCard(p));
    if (grid.childElementCount === 0) grid.append(h("p", { class: "muted" }, q ? "Nothing matches. Try another word." : "The catalog is empty."));
    replace(
      more,
      res.nextPageToken
        ? h(
            "button",
            {
              type: "button",
              onclick: () =>
                load(res.nextPageToken).catch((err: unknown) => replace(more, errorBox(err))),
            },
            "Show more",
          )
        : null,
    );
  }
  await load("");
};

function productCard(p: Product): HTMLElement {
  const qty = h("input", { type: "number", min: 1, max: 1000, value: 1, name: "quantity", "aria-label": `Quantity of ${p.name}` });
  const added = h("span", { class: "added", role: "status" });
  return h(
    "article",
    { class: "card", "data-sku": p.sku },
    h("span", { class: "chip" }, p.category),
    h("h3", null, h("a", { href: `#/product/${p.sku}` }, p.name)),
    h("p", { class: "muted" }, p.description),
    h(
      "div",
      { class: "buy" },
      h("span", { class: "price" }, money(p.price)),
      qty,
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            addToCart(p.sku, p.name, Math.max(1, Math.floor(Number(qty.value)) || 1));
            added.textContent = "Added to cart";
          },
        },
        "Add to cart",
      ),
    ),
    added,
  );
}

export const productPage: Page = async (main, { params, signal }) => {
  const { page } = await storefrontPublic.getProductPage({ sku: params[0] }, { signal });
  const product = page?.product;
  const stock = page?.stock;
  replace(
    main,
    h("p", null, h("a", { href: "#/" }, "← Catalog")),
    product?.status?.degraded
      ? degradedNotice("Product details", product.status.reason)
      : product?.product
        ? productCard(product.product)
        : null,
    h(
      "section",
      { class: "section" },
      h("h2", null, "Availability"),
      stock?.status?.degraded
        ? degradedNotice("Availability", stock.status.reason)
        : h("p", { "data-testid": "stock" }, stock && stock.available > 0 ? `${stock.available} in stock` : "Sold out"),
    ),
  );
};

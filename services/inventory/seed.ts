// The stock a new shop starts with, one row per catalog SKU (the catalog's
// seed is the source of the SKU list; it is copied here, not imported, so
// inventory owns its data). "barista-apron" is scarce and "knock-box" sold
// out, so a walk-through can run out of stock on purpose.
export interface SeedStock {
  sku: string;
  onHand: number;
}

export const seedStock: readonly SeedStock[] = [
  { sku: "espresso-beans-1kg", onHand: 180 },
  { sku: "filter-beans-500g", onHand: 150 },
  { sku: "decaf-beans-500g", onHand: 60 },
  { sku: "pour-over-dripper", onHand: 75 },
  { sku: "gooseneck-kettle", onHand: 40 },
  { sku: "french-press-1l", onHand: 55 },
  { sku: "moka-pot-6-cup", onHand: 45 },
  { sku: "burr-grinder", onHand: 25 },
  { sku: "hand-grinder", onHand: 30 },
  { sku: "digital-scale", onHand: 70 },
  { sku: "milk-frother", onHand: 35 },
  { sku: "espresso-cup-set", onHand: 50 },
  { sku: "latte-mug", onHand: 120 },
  { sku: "travel-tumbler", onHand: 90 },
  { sku: "paper-filters-100", onHand: 200 },
  { sku: "descaler", onHand: 110 },
  { sku: "cleaning-tablets", onHand: 95 },
  { sku: "green-tea-sencha", onHand: 80 },
  { sku: "black-tea-assam", onHand: 85 },
  { sku: "chai-spice-mix", onHand: 65 },
  { sku: "cold-brew-jar", onHand: 20 },
  { sku: "barista-apron", onHand: 3 },
  { sku: "knock-box", onHand: 0 },
  { sku: "tamper-58mm", onHand: 40 },
];

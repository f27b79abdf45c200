// The catalog a new shop starts with. Prices are in euro cents.
export interface SeedProduct {
  sku: string;
  name: string;
  description: string;
  category: string;
  priceMinor: number;
}

export const seedProducts: readonly SeedProduct[] = [
  { sku: "espresso-beans-1kg", name: "Espresso Beans 1 kg", description: "Dark roast, chocolate and hazelnut notes.", category: "coffee", priceMinor: 2490 },
  { sku: "filter-beans-500g", name: "Filter Beans 500 g", description: "Light roast from Ethiopia, floral and bright.", category: "coffee", priceMinor: 1450 },
  { sku: "decaf-beans-500g", name: "Decaf Beans 500 g", description: "Swiss-water decaf, caramel sweetness.", category: "coffee", priceMinor: 1390 },
  { sku: "pour-over-dripper", name: "Pour-Over Dripper", description: "Ceramic cone dripper for one or two cups.", category: "brewing", priceMinor: 2900 },
  { sku: "gooseneck-kettle", name: "Gooseneck Kettle", description: "Temperature-controlled kettle, 0.9 l.", category: "brewing", priceMinor: 8900 },
  { sku: "french-press-1l", name: "French Press 1 l", description: "Borosilicate glass and steel plunger.", category: "brewing", priceMinor: 3400 },
  { sku: "moka-pot-6-cup", name: "Moka Pot 6 Cup", description: "Aluminium stovetop espresso maker.", category: "brewing", priceMinor: 3200 },
  { sku: "burr-grinder", name: "Conical Burr Grinder", description: "40 grind settings, from espresso to cold brew.", category: "equipment", priceMinor: 14900 },
  { sku: "hand-grinder", name: "Hand Grinder", description: "Steel burrs, fits in a travel bag.", category: "equipment", priceMinor: 7900 },
  { sku: "digital-scale", name: "Digital Coffee Scale", description: "0.1 g resolution with a built-in timer.", category: "equipment", priceMinor: 3900 },
  { sku: "milk-frother", name: "Milk Frother", description: "Hot and cold foam at the press of a button.", category: "equipment", priceMinor: 5900 },
  { sku: "espresso-cup-set", name: "Espresso Cup Set", description: "Four porcelain cups with saucers.", category: "tableware", priceMinor: 2400 },
  { sku: "latte-mug", name: "Latte Mug", description: "Stoneware mug, 350 ml.", category: "tableware", priceMinor: 1600 },
  { sku: "travel-tumbler", name: "Travel Tumbler", description: "Vacuum insulated, keeps coffee hot for six hours.", category: "tableware", priceMinor: 2700 },
  { sku: "paper-filters-100", name: "Paper Filters x100", description: "Unbleached filters for cone drippers.", category: "supplies", priceMinor: 590 },
  { sku: "descaler", name: "Descaler", description: "Citric-acid descaler for kettles and machines.", category: "supplies", priceMinor: 890 },
  { sku: "cleaning-tablets", name: "Cleaning Tablets", description: "Removes coffee oils from espresso machines.", category: "supplies", priceMinor: 1190 },
  { sku: "green-tea-sencha", name: "Sencha Green Tea", description: "Japanese steamed green tea, 100 g.", category: "tea", priceMinor: 1290 },
  { sku: "black-tea-assam", name: "Assam Black Tea", description: "Malty breakfast tea, 250 g.", category: "tea", priceMinor: 990 },
  { sku: "chai-spice-mix", name: "Chai Spice Mix", description: "Cardamom, cinnamon, ginger and clove.", category: "tea", priceMinor: 790 },
  { sku: "cold-brew-jar", name: "Cold Brew Jar", description: "1.5 l jar with a fine mesh filter.", category: "brewing", priceMinor: 3600 },
  { sku: "barista-apron", name: "Barista Apron", description: "Waxed canvas with leather straps.", category: "accessories", priceMinor: 4500 },
  { sku: "knock-box", name: "Knock Box", description: "Catches spent espresso pucks.", category: "accessories", priceMinor: 2200 },
  { sku: "tamper-58mm", name: "Tamper 58 mm", description: "Stainless steel base, walnut handle.", category: "accessories", priceMinor: 3100 },
];

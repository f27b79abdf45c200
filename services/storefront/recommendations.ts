// Which products the profile page suggests. The rule is deliberately simple:
// a window of RECOMMENDATION_COUNT consecutive products from the first page of
// the catalog, starting at a place that moves every day and differs per user.
// It needs one catalog read and knows nothing of the catalog's categories.

/** How many products the page shows. */
export const RECOMMENDATION_COUNT = 4;
/** How many products are read from the catalog to choose from. */
export const RECOMMENDATION_POOL = 20;

const DAY_MS = 86_400_000;

function userHash(userId: string): number {
  let h = 0;
  for (let i = 0; i < userId.length; i++) h = (h * 31 + userId.charCodeAt(i)) >>> 0;
  return h;
}

export function pickRecommendations<T>(products: readonly T[], userId: string, now: Date = new Date()): T[] {
  if (products.length <= RECOMMENDATION_COUNT) return [...products];
  const start = (Math.floor(now.getTime() / DAY_MS) + userHash(userId)) % products.length;
  return Array.from({ length: RECOMMENDATION_COUNT }, (_, i) => products[(start + i) % products.length]);
}

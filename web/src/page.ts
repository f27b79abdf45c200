// What every page is: a function that fills the main element. The signal
// aborts when the user navigates away, ending the page's streams and timers.

export interface PageContext {
  /** The route's captured groups. */
  params: string[];
  query: URLSearchParams;
  signal: AbortSignal;
}

export type Page = (main: HTMLElement, ctx: PageContext) => Promise<void> | void;

/** Runs fn every intervalMs until the signal aborts; one run at a time. */
export function every(intervalMs: number, signal: AbortSignal, fn: () => Promise<void>): void {
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await fn();
    } finally {
      if (!signal.aborted) setTimeout(tick, intervalMs);
    }
  };
  setTimeout(tick, intervalMs);
}

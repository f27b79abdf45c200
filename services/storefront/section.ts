// A page section filled from one dependency under its own deadline. A call
// that fails or misses its deadline degrades only its section: the section
// comes back empty with the reason, and the page still answers.
import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { Code } from "@connectrpc/connect";
import { codeName, contractOf, remainingBudgetMs } from "@shop/platform";
import type { Logger } from "@shop/platform";

/**
 * The part of the page's remaining budget each section's call may use. The
 * calls run in parallel, so each can have most of it; the rest is left for
 * assembling and sending the page after the slowest section gave up.
 */
export const SECTION_BUDGET_SHARE = 0.7;

export interface SectionStatus {
  degraded: boolean;
  /** "<dependency>: <gRPC code> <message>" when degraded, else empty. */
  reason: string;
}

export interface Section<T> {
  /** The dependency's answer; undefined when the section is degraded. */
  readonly value: T | undefined;
  readonly status: SectionStatus;
}

export interface SectionOptions {
  /** Codes that fail the whole page instead of degrading the section (the dependency's error passes through). */
  failPageOn?: readonly Code[];
}

export type SectionLoader = <T>(dependency: string, call: () => Promise<T>, options?: SectionOptions) => Promise<Section<T>>;

const healthy: SectionStatus = { degraded: false, reason: "" };

/**
 * The deadline for each section of the page being handled: a share of what is
 * left of its budget now, so never more than remains. The page method's
 * contract deadline stands in when the call carries no budget at all.
 */
export function sectionDeadlineMs(page: DescMethod, share = SECTION_BUDGET_SHARE): number {
  return sectionBudgetMs(remainingBudgetMs() ?? contractOf(page).deadlineMs ?? 1000, share);
}

/**
 * A section's deadline when the page has pageBudgetMs left. The module
 * declares its calls' deadlines with it too (index.ts), for the contracts
 * check and the console.
 */
export function sectionBudgetMs(pageBudgetMs: number, share = SECTION_BUDGET_SHARE): number {
  // At least 1 ms: a spent budget then fails fast with DEADLINE_EXCEEDED in
  // the client policy instead of a zero that a transport could read as "none".
  return Math.max(1, Math.floor(pageBudgetMs * share));
}

export function createSectionLoader(logger: Logger): SectionLoader {
  return async function loadSection<T>(dependency: string, call: () => Promise<T>, options: SectionOptions = {}): Promise<Section<T>> {
    try {
      return { value: await call(), status: healthy };
    } catch (err) {
      const error = ConnectError.from(err);
      if (options.failPageOn?.includes(error.code)) throw error;
      const reason = `${dependency}: ${codeName(error.code)} ${error.rawMessage}`;
      logger.warn({ dependency, code: codeName(error.code), reason }, "page section degraded");
      return { value: undefined, status: { degraded: true, reason } };
    }
  };
}

// Opaque page tokens for keyset pagination: the client hands back what it got,
// and a token it made up answers INVALID_ARGUMENT instead of a wrong page.
import { Code, ConnectError } from "@connectrpc/connect";

export const pageToken = {
  encode(position: Record<string, string | number>): string {
    return Buffer.from(JSON.stringify(position)).toString("base64url");
  },
  decode<T extends Record<string, string | number>>(token: string, keys: ReadonlyArray<keyof T>): T | undefined {
    if (token === "") return undefined;
    try {
      const value = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as T;
      if (value && typeof value === "object" && keys.every((k) => k in value)) return value;
    } catch {
      // fall through to the error below: the token is not one we issued
    }
    throw new ConnectError("page_token is not valid: pass the next_page_token of a previous response", Code.InvalidArgument);
  },
  /** A requested page size, defaulted and capped. */
  size(requested: number, fallback = 20, max = 100): number {
    return requested <= 0 ? fallback : Math.min(requested, max);
  },
};

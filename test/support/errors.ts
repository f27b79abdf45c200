// The error a call failed with, as the caller sees it.
import { ConnectError } from "@connectrpc/connect";
import type { Code } from "@connectrpc/connect";

/** The ConnectError the call rejected with; throws if the call succeeded. */
export async function errorOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

/** Its gRPC code only. */
export async function codeOf(call: Promise<unknown>): Promise<Code> {
  return (await errorOf(call)).code;
}

// The shop (or some of its services) started inside the test process on an
// ephemeral loopback port, with logs kept in memory for assertions.
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import type { Client, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { createLogger, createTokenAuthority } from "@shop/platform";
import type { ServiceModule, TokenAuthority } from "@shop/platform";
import { startShop } from "../../runner/shop.ts";
import type { RunningShop } from "../../runner/shop.ts";

export const TEST_TOKEN_KEY = "test-token-key-for-the-suite-only";

export interface TestShop {
  readonly shop: RunningShop;
  readonly address: string;
  readonly url: string;
  readonly logs: Array<Record<string, unknown>>;
  readonly tokens: TokenAuthority;
  readonly transport: Transport;
  client<S extends DescService>(service: S): Client<S>;
  /** Call options carrying a bearer token. */
  as(token: string): { headers: { authorization: string } };
  stop(): Promise<void>;
}

export interface TestShopOptions {
  /** Folder for the SQLite files; default in memory. Pass a folder to restart on the same data. */
  dataDir?: string;
  /** Extra configuration the services read through ctx.env, on top of process.env. */
  env?: Record<string, string>;
  /** Consumer tuning, for example fewer attempts and shorter backoff in dead-letter tests. */
  events?: { maxAttempts?: number; backoffMs?: number; retryLaterWindowMs?: number; concurrency?: number };
}

export async function startTestShop(modules: readonly ServiceModule[], options: TestShopOptions = {}): Promise<TestShop> {
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const tokens = createTokenAuthority({ key: TEST_TOKEN_KEY });
  const shop = await startShop({
    modules,
    port: 0,
    host: "127.0.0.1",
    dataDir: options.dataDir ?? ":memory:",
    logger: createLogger({ destination, level: "info" }),
    tokens,
    drainTimeoutMs: 2000,
    events: options.events,
    env: { ...process.env, ...options.env },
  });
  const url = `http://127.0.0.1:${shop.port}`;
  const transport = createGrpcTransport({ baseUrl: url });
  return {
    shop,
    address: `127.0.0.1:${shop.port}`,
    url,
    logs,
    tokens,
    transport,
    client: (service) => createClient(service, transport),
    as: (token) => ({ headers: { authorization: `Bearer ${token}` } }),
    stop: () => shop.stop(),
  };
}

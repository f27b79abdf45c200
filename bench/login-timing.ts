// What a Login's time tells an attacker: the users service alone in this
// process, ROUNDS (default 40) Logins each for an unknown email, a known email
// with a wrong password and a known email with the right one, interleaved,
// one at a time. Prints each kind's median and p90 and their ratios. Not a test.
//   node bench/login-timing.ts
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createLogger, createTokenAuthority } from "@shop/platform";
import { UserService } from "../gen/shop/users/v1/users_pb.js";
import { users as usersModule } from "../services/users/index.ts";
import { startShop } from "../runner/shop.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 40);
const shop = await startShop({
  modules: [usersModule],
  port: 0,
  host: "127.0.0.1",
  dataDir: ":memory:",
  logger: createLogger({ level: "warn", destination: new Writable({ write: (_c, _e, done) => done() }) }),
  tokens: createTokenAuthority({ allowDevelopmentKeys: true }),
});
const client = createClient(UserService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${shop.port}` }));
try {
  await client.signUp({ email: "known@example.com", password: "the-right-password", displayName: "K" });
  const kinds = {
    "unknown email": { email: "nobody@example.com", password: "the-right-password" },
    "known email, wrong password": { email: "known@example.com", password: "a-wrong-password" },
    "known email, right password": { email: "known@example.com", password: "the-right-password" },
  };
  const times = new Map<string, number[]>(Object.keys(kinds).map((k) => [k, []]));
  for (let round = 0; round < ROUNDS + 3; round++) {
    for (const [kind, req] of Object.entries(kinds)) {
      const t0 = performance.now();
      await client.login(req).catch(() => undefined);
      // The first three rounds warm up (the decoy hash, the JIT).
      if (round >= 3) times.get(kind)!.push(performance.now() - t0);
    }
  }
  const pct = (list: number[], p: number) => [...list].sort((a, b) => a - b)[Math.min(list.length - 1, Math.floor(list.length * p))];
  const base = pct(times.get("known email, right password")!, 0.5);
  for (const [kind, list] of times) {
    const p50 = pct(list, 0.5);
    process.stdout.write(`${kind.padEnd(30)} p50 ${p50.toFixed(1).padStart(6)} ms   p90 ${pct(list, 0.9).toFixed(1).padStart(6)} ms   p50 / right password ${(p50 / base).toFixed(2)}\n`);
  }
} finally {
  await shop.stop();
}

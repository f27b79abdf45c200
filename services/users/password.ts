// Passwords are stored as scrypt hashes (node:crypto), each with its own salt,
// in the form "scrypt$N$r$p$salt$hash" so the cost can rise later without
// breaking old hashes.
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import type { ScryptOptions } from "node:crypto";

const COST: ScryptOptions = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 32;

let derivations = 0;

/** How many scrypt derivations this process ran: one per Login, whatever its outcome. */
export function scryptWork(): { derivations: number } {
  return { derivations };
}

function derive(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  derivations++;
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFKC"), salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, COST);
  return ["scrypt", COST.N, COST.r, COST.p, salt.toString("base64"), key.toString("base64")].join("$");
}

/** A hash of nothing anyone knows, at today's cost: what an unknown email is checked against. */
let decoy: Promise<string> | undefined;

/**
 * Checks a login: against the user's hash, or, for an email with no account,
 * against a decoy hash of the same cost, so both take one scrypt and the time
 * a Login takes does not tell whether an email has an account.
 */
export async function checkCredentials(password: string, stored: string | undefined): Promise<boolean> {
  if (stored !== undefined) return verifyPassword(password, stored);
  await verifyPassword(password, await primeDecoy());
  return false;
}

/** Makes the decoy hash now (at service start), so the first unknown email costs no more than the rest. */
export function primeDecoy(): Promise<string> {
  decoy ??= hashPassword(randomBytes(24).toString("base64"));
  return decoy;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64");
  const key = await derive(password, Buffer.from(salt, "base64"), { N: Number(n), r: Number(r), p: Number(p) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

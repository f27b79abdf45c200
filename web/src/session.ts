// Who is using this browser: the shopper's token (kept across tabs until it
// expires) and, separately, an operator's token for the console (kept in
// this tab only).

export interface SessionUser {
  id: string;
  email: string;
  displayName: string;
}

interface Session {
  token: string;
  expiresAtMs: number;
  user: SessionUser;
}

const SESSION_KEY = "shop.session";
const OPERATOR_KEY = "shop.operatorToken";

export function currentSession(): Session | undefined {
  const raw = localStorage.getItem(SESSION_KEY);
  if (!raw) return undefined;
  try {
    const s = JSON.parse(raw) as Session;
    if (s.expiresAtMs > Date.now()) return s;
  } catch {
    // A value this app did not write: treat as logged out, below.
  }
  localStorage.removeItem(SESSION_KEY);
  return undefined;
}

export function startSession(token: string, expiresAtMs: number, user: SessionUser): void {
  localStorage.setItem(SESSION_KEY, JSON.stringify({ token, expiresAtMs, user }));
  window.dispatchEvent(new Event("shop:session"));
}

export function endSession(): void {
  localStorage.removeItem(SESSION_KEY);
  window.dispatchEvent(new Event("shop:session"));
}

export const operatorToken = {
  get: (): string | undefined => sessionStorage.getItem(OPERATOR_KEY) ?? undefined,
  set: (token: string) => sessionStorage.setItem(OPERATOR_KEY, token.trim()),
  clear: () => sessionStorage.removeItem(OPERATOR_KEY),
};

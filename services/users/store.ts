// The users table. Emails are stored lower-cased so uniqueness ignores case.
import type { Database, Queryable } from "@shop/platform";

export interface UserRecord {
  id: string;
  email: string;
  displayName: string;
  passwordHash: string;
  createdAt: string;
}

interface UserRow {
  id: string;
  email: string;
  display_name: string;
  password_hash: string;
  created_at: string;
}

const toRecord = (row: UserRow): UserRecord => ({
  id: row.id,
  email: row.email,
  displayName: row.display_name,
  passwordHash: row.password_hash,
  createdAt: row.created_at,
});

export type UserStore = ReturnType<typeof createUserStore>;

export function createUserStore(db: Database) {
  return {
    /** Inserts the user in the given transaction; answers false when the email is taken. */
    async insert(tx: Queryable, user: UserRecord): Promise<boolean> {
      const changed = await tx.run(
        "INSERT INTO users (id, email, display_name, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING",
        user.id,
        user.email,
        user.displayName,
        user.passwordHash,
        user.createdAt,
        user.createdAt,
      );
      return changed === 1;
    },
    async byEmail(email: string): Promise<UserRecord | undefined> {
      const row = await db.get<UserRow>("SELECT * FROM users WHERE email = ?", email);
      return row && toRecord(row);
    },
    async byId(id: string): Promise<UserRecord | undefined> {
      const row = await db.get<UserRow>("SELECT * FROM users WHERE id = ?", id);
      return row && toRecord(row);
    },
    async updateDisplayName(id: string, displayName: string): Promise<UserRecord | undefined> {
      await db.run("UPDATE users SET display_name = ?, updated_at = ? WHERE id = ?", displayName, new Date().toISOString(), id);
      return this.byId(id);
    },
  };
}

// The token routes' JSON (issue 19): GET/POST /api/tokens, GET /api/whoami.

/** A token as listed: never its secret, which only `TokenCreated` carries, once. */
export interface TokenInfo {
  id: string;
  scope: 'read' | 'deploy' | 'admin';
  /** The apps it covers; null: every app. */
  apps: string[] | null;
  label: string | null;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

/** POST /api/tokens and POST /api/tokens/rotate-admin */
export interface TokenCreated {
  token: string;
  info: TokenInfo;
}

/** GET /api/whoami: what the presented token may do (`admin` for the admin token file). */
export interface WhoAmI {
  id: string;
  scope: 'read' | 'deploy' | 'admin';
  apps: string[] | null;
  label: string | null;
}

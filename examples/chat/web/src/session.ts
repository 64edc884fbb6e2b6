import type { RouterOutputs } from './generated/AppRouter';

/** What `auth.signIn` returns: the bearer token and the signed-in name. */
export type Session = RouterOutputs['auth']['signIn'];

// Per tab (sessionStorage), so two tabs can chat as two different people.
const key = 'oxrpc-chat-session';

export function loadSession(): Session | null {
  const saved = sessionStorage.getItem(key);
  return saved ? (JSON.parse(saved) as Session) : null;
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(key, JSON.stringify(session));
  else sessionStorage.removeItem(key);
}

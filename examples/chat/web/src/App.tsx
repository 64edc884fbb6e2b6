import { QueryClient, QueryClientProvider, skipToken, useMutation, useQuery } from '@tanstack/react-query';
import { useSubscription } from '@trpc/tanstack-react-query';
import { useCallback, useEffect, useState } from 'react';
import { Room } from './Room';
import { loadSession, saveSession, type Session } from './session';
import { createClient, TRPCProvider, useTRPC } from './trpc';

export function App() {
  const [queryClient] = useState(() => new QueryClient());
  const [trpcClient] = useState(createClient);
  const [session, setSession] = useState(loadSession);
  const changeSession = useCallback(
    (next: Session | null) => {
      saveSession(next);
      queryClient.clear();
      setSession(next);
    },
    [queryClient],
  );
  const signOut = useCallback(() => changeSession(null), [changeSession]);
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {session ? (
          <Chat me={session.name} onSignOut={signOut} />
        ) : (
          <SignIn onSignedIn={changeSession} />
        )}
      </TRPCProvider>
    </QueryClientProvider>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const trpc = useTRPC();
  const [name, setName] = useState('');
  const signIn = useMutation(trpc.auth.signIn.mutationOptions({ onSuccess: onSignedIn }));
  const error = signIn.error && (signIn.error.data?.zodError?.fieldErrors.name?.[0] ?? signIn.error.message);
  return (
    <main className="sign-in">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          signIn.mutate({ name });
        }}
      >
        <h1>oxrpc chat</h1>
        <label htmlFor="name">Your name</label>
        <input
          id="name"
          data-testid="name-input"
          autoFocus
          value={name}
          placeholder="e.g. ada"
          onChange={(e) => {
            setName(e.target.value);
            signIn.reset();
          }}
        />
        {error && (
          <p className="field-error" data-testid="field-error">
            {error}
          </p>
        )}
        <button data-testid="sign-in" disabled={signIn.isPending || name === ''}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function Chat({ me, onSignOut }: { me: string; onSignOut: () => void }) {
  const trpc = useTRPC();
  const rooms = useQuery(trpc.rooms.list.queryOptions());
  // The server no longer knows the token (e.g. its data was wiped): sign in again.
  const whoami = useQuery(trpc.auth.me.queryOptions());
  useEffect(() => {
    if (whoami.data === null) onSignOut();
  }, [whoami.data, onSignOut]);

  const [selected, setSelected] = useState<string>();
  const room = rooms.data?.find((r) => r.id === selected) ?? rooms.data?.[0];
  // Who is in the room and who is typing: a fresh snapshot whenever it changes.
  const activity = useSubscription(trpc.rooms.onActivity.subscriptionOptions(room ? { room: room.id } : skipToken));

  return (
    <div className="chat">
      <aside className="sidebar">
        <h1>oxrpc chat</h1>
        <section>
          <h2>Rooms</h2>
          <nav className="rooms">
            {rooms.data?.map((r) => (
              <button
                key={r.id}
                data-testid={`room-${r.id}`}
                className={r.id === room?.id ? 'active' : undefined}
                onClick={() => setSelected(r.id)}
              >
                # {r.name}
              </button>
            ))}
          </nav>
        </section>
        <section>
          <h2>Online</h2>
          <ul className="online" data-testid="online">
            {activity.data?.online.map((name) => (
              <li key={name}>
                {name}
                {name === me && <span className="you"> (you)</span>}
              </li>
            ))}
          </ul>
        </section>
        <footer>
          {me} ·{' '}
          <button className="link" onClick={onSignOut}>
            sign out
          </button>
        </footer>
      </aside>
      {room && <Room key={room.id} room={room.id} name={room.name} me={me} typing={activity.data?.typing ?? []} />}
    </div>
  );
}

import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  wsLink,
} from '@trpc/client';
import { createTRPCContext } from '@trpc/tanstack-react-query';
import type { AppRouter } from './generated/AppRouter';
import { loadSession } from './session';

export const { TRPCProvider, useTRPC } = createTRPCContext<AppRouter>();

/** Subscriptions go over WebSocket, or over Server-Sent Events with `?transport=sse`. */
export const transport = new URLSearchParams(window.location.search).get('transport') === 'sse' ? 'sse' : 'websocket';

// The chat server serves this app and the API on the same origin.
const url = `${window.location.origin}/trpc`;

// Read at every request and (re)connection, so signing in needs no new client.
const token = () => loadSession()?.token;
const connectionParams = () => {
  const t = token();
  return t ? { token: t } : null;
};

export function createClient() {
  const subscriptions =
    transport === 'sse'
      ? httpSubscriptionLink({ url, connectionParams })
      : wsLink({
          // Lazy: the socket opens with the first subscription (after signing in) and closes
          // when the last one ends. It reconnects by itself, and subscriptions resume from the
          // last event id they saw.
          client: createWSClient({ url: url.replace(/^http/, 'ws'), connectionParams, lazy: { enabled: true, closeMs: 0 } }),
        });
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: subscriptions,
        false: httpBatchLink({
          url,
          headers: () => {
            const t = token();
            return t ? { authorization: `Bearer ${t}` } : {};
          },
        }),
      }),
    ],
  });
}

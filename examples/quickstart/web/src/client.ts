// The quickstart's TypeScript client: the official @trpc/client, typed by the AppRouter.d.ts
// that `cargo build` wrote from the Rust API. Run the server first (`cargo run -p quickstart-server`),
// then: `npm run start --workspace examples/quickstart/web`.
import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client';
import type { AppRouter, RouterOutputs } from './generated/AppRouter.js';

const url = process.env.TRPC_URL ?? 'http://127.0.0.1:3000/trpc';

function client(caller?: string) {
  return createTRPCClient<AppRouter>({
    links: [httpBatchLink({ url, headers: caller ? { authorization: `Bearer ${caller}` } : {} })],
  });
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`quickstart check failed: ${what}`);
}

const anonymous = client();
const ada = client('ada');

// Queries: fully typed input and output.
const { greeting } = await anonymous.greet.query({ name: 'tRPC' });
console.log(greeting);
check(greeting === 'hello, tRPC!', 'greet');

// The context sees the Authorization header.
check((await anonymous.whoami.query()) === null, 'anonymous whoami');
check((await ada.whoami.query()) === 'ada', 'ada whoami');

// Mutations; errors arrive as TRPCClientError with the tRPC code.
try {
  await anonymous.user.create.mutate({ name: 'eve' });
  check(false, 'anonymous create must fail');
} catch (e) {
  check(e instanceof TRPCClientError && e.data?.code === 'UNAUTHORIZED', 'UNAUTHORIZED');
}
const created: RouterOutputs['user']['create'] = await ada.user.create.mutate({ name: 'grace', email: 'g@example.com' });
console.log('created', created);
const again = await anonymous.user.byId.query({ id: created.id });
check(again.name === 'grace' && again.email === 'g@example.com' && again.created_by === 'ada', 'byId');

// Inputs are validated against the constraints declared on the Rust type; every problem comes
// back at once, also in the zod-compatible shape tRPC+zod frontends read.
try {
  await ada.user.create.mutate({ name: '', email: 'not-an-email' });
  check(false, 'invalid input must fail');
} catch (e) {
  check(e instanceof TRPCClientError && e.data?.code === 'BAD_REQUEST', 'BAD_REQUEST');
  const fieldErrors = (e as TRPCClientError<AppRouter>).data?.zodError?.fieldErrors ?? {};
  check(Object.keys(fieldErrors).sort().join(',') === 'email,name', 'fieldErrors for name and email');
  console.log('validation:', (e as TRPCClientError<AppRouter>).data?.issues);
}
const all = await anonymous.user.list.query();
check(all.some((u) => u.id === created.id), 'list');
console.log('quickstart client: all calls worked');

import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the app with hot reload and forwards /trpc (HTTP, SSE and WebSocket)
// to a chat server on its default port, 3002; `npm run build` writes dist/, which the chat server serves.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: { '/trpc': { target: 'http://127.0.0.1:3002', ws: true } },
  },
});

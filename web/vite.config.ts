// Builds the browser app into web/dist, which the embedded runner serves at /
// (and the edge in mesh mode). The generated clients live outside this folder
// (../gen), so the dev server may read the repository root.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
// During `vite` (dev), RPCs go to a running `make run`.
const backend = process.env.SHOP_BACKEND ?? "http://localhost:8080";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // One small app: a single chunk is fewer round trips than a split.
    assetsInlineLimit: 0,
  },
  server: {
    fs: { allow: [repoRoot] },
    // Connect paths are /<package>.<Service>/<Method>.
    proxy: { "^/(shop|mesh|grpc)\\.": { target: backend, changeOrigin: false } },
  },
});

// Copies the pinned rrweb bundles from node_modules into dist/, which the Go
// package embeds. Run by `npm run build` (the Makefile does it after `npm ci`).
import { copyFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  '@rrweb/record/umd/record.min.js': 'rrweb-record.min.js',
  '@rrweb/replay/umd/replay.min.js': 'rrweb-replay.min.js',
  '@rrweb/replay/dist/style.css': 'rrweb-replay.css',
};
mkdirSync(join(here, 'dist'), { recursive: true });
for (const [from, to] of Object.entries(files)) {
  const src = join(here, 'node_modules', from);
  if (!existsSync(src)) {
    console.error(`build.mjs: ${src} is missing; run "npm ci" in web/ first`);
    process.exit(1);
  }
  copyFileSync(src, join(here, 'dist', to));
  console.log(`web: dist/${to} <- node_modules/${from}`);
}

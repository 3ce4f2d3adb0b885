#!/usr/bin/env node
// Bundles the upload page (web/src/app.ts and the CSS it imports: Uppy's and ours) into
// web/dist/, which src/http/routes/web.ts serves. No CDN: everything the page loads is here.
// Usage: node web/build.mjs [--watch]
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import * as esbuild from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))

/** @type {import('esbuild').BuildOptions} */
export const options = {
  entryPoints: {app: path.join(here, 'src/app.ts')},
  outdir: path.join(here, 'dist'),
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  define: {'process.env.NODE_ENV': '"production"'},
}

export async function buildWeb() {
  await esbuild.build(options)
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--watch')) {
    const context = await esbuild.context(options)
    await context.watch()
  } else {
    await buildWeb()
  }
}

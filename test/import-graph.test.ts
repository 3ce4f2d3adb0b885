/**
 * The import graph of src/ and consumers/ has no cycle (type-only imports included): a module
 * that imports its own importer is a layer boundary drawn the wrong way (issue 18).
 */
import assert from 'node:assert/strict'
import {it} from 'node:test'
import {parseCircular, parseDependencyTree} from 'dpdm'

it('no module of src/ or consumers/ imports, directly or through others, a module that imports it', async () => {
  const tree = await parseDependencyTree(['src/**/*.ts', 'consumers/**/*.ts'], {
    context: process.cwd(),
    tsconfig: 'tsconfig.json',
    transform: false,
    skipDynamicImports: true,
    include: /\.ts$/,
    exclude: /node_modules|\.test\.ts$/,
  })
  const modules = Object.keys(tree)
  assert.ok(modules.some((m) => m.endsWith('src/node.ts')) && modules.length > 100, `the graph was read (${modules.length} modules)`)
  assert.deepEqual(parseCircular(tree, true), [])
})

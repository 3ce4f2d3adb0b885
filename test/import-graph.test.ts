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

/** Imports of the given files (the graph dpdm reads), by importer, kept when they match `to`. */
async function importsOf(files: string, to: RegExp): Promise<string[]> {
  const tree = await parseDependencyTree([files], {context: process.cwd(), tsconfig: 'tsconfig.json', transform: false, skipDynamicImports: false, include: /\.ts$/, exclude: /node_modules|\.test\.ts$/})
  return Object.entries(tree)
    .filter(([module]) => module.startsWith(files.split('*')[0]!))
    .flatMap(([module, deps]) => (deps ?? []).filter((d) => d.id && to.test(d.id)).map((d) => `${module} -> ${d.id}`))
}

it('src/media knows nothing of jobs: no module of src/media imports one of src/jobs (consumers/ adapts media work to the runner)', async () => {
  assert.deepEqual(await importsOf('src/media/**/*.ts', /^src\/jobs\//), [])
})

it('src/uploads imports nothing from src/media (media depends on uploads, never the other way)', async () => {
  assert.deepEqual(await importsOf('src/uploads/**/*.ts', /^src\/media\//), [])
})

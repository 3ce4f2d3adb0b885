/**
 * What can be checked of the container image and the compose file without a Docker engine: the
 * commands they run exist in the build, the environment they set is config the node knows and
 * accepts, the haproxy config parses, and the image and services keep the shape the README
 * promises (non-root, healthcheck, a volume per node).
 */
import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {describe, test} from 'node:test'
import {fileURLToPath} from 'node:url'
import {loadConfig} from '../src/config/index.js'
import {isJobKind} from '../src/jobs/job-kinds.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const read = (file: string) => readFileSync(path.join(root, file), 'utf8')
const dockerfile = read('Dockerfile')
const compose = read('docker-compose.yml')
const packageJson = JSON.parse(read('package.json')) as {bin: Record<string, string>}
const cli = path.join(root, packageJson.bin.ingest!)

/** The environment names the config module reads (its ENV_NAMES table). */
function knownEnvNames(): Set<string> {
  const source = read('src/config/index.ts')
  const table = /const ENV_NAMES[^{]*\{([\s\S]*?)\n\}/.exec(source)?.[1] ?? ''
  return new Set([...table.matchAll(/:\s*'([A-Z0-9_]+)'/g)].map((m) => m[1]!))
}

/** `KEY: value` pairs of the compose file's environment blocks (anchors and inline maps alike), with ${VAR:-default} resolved to the default. */
function composeEnvironment(): Map<string, string> {
  const env = new Map<string, string>()
  const resolve = (value: string) => value.replace(/\$\{(\w+)(?::?-([^}]*)|:\?[^}]*)?\}/g, (_m, name: string, fallback?: string) => fallback ?? (name === 'CLUSTER_SECRET' ? 'x'.repeat(64) : ''))
  const block = /^x-env: &env\n((?:  .*\n)+)/m.exec(compose)?.[1] ?? ''
  for (const match of block.matchAll(/^  ([A-Z0-9_]+): (.*)$/gm)) env.set(match[1]!, resolve(match[2]!.replace(/^"|"$/g, '')))
  for (const inline of compose.matchAll(/environment: \{<<: \*env, ([^}]*)\}/g)) {
    for (const pair of inline[1]!.split(/,\s*/)) {
      const colon = pair.indexOf(':')
      env.set(pair.slice(0, colon).trim(), resolve(pair.slice(colon + 1).trim().replace(/^"|"$/g, '')))
    }
  }
  return env
}

describe('deployment files', () => {
  test('the image runs the ingest CLI the build produces, with serve and worker', () => {
    assert.equal(packageJson.bin.ingest, 'dist/src/cli/index.js')
    assert.match(dockerfile, /ENTRYPOINT \[[^\]]*"node", "\/app\/dist\/src\/cli\/index\.js"\]/)
    assert.ok(existsSync(cli), `${packageJson.bin.ingest} exists after the build (npm test builds first)`)
    const help = execFileSync(process.execPath, [cli, '--help'], {encoding: 'utf8'})
    assert.match(help, /\bserve\b/)
    assert.match(help, /\bworker\b/)
    for (const match of compose.matchAll(/command: \[([^\]]*)\]/g)) {
      const args = JSON.parse(`[${match[1]}]`) as string[]
      assert.ok(['serve', 'worker'].includes(args[0]!), `compose runs "ingest ${args.join(' ')}"`)
      const kinds = args[args.indexOf('--kinds') + 1]
      if (args.includes('--kinds')) for (const kind of kinds!.split(',')) assert.ok(isJobKind(kind), `${kind} is a job kind`)
    }
  })

  test('the image is multi-stage on Node 24, runs as a non-root user, with Debian ffmpeg and a healthcheck on /healthz', () => {
    assert.deepEqual([...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]), ['node:24-bookworm-slim', 'node:24-bookworm-slim'], 'both stages on Node 24, the recommended runtime')
    assert.match(dockerfile, /^USER node$/m)
    assert.match(dockerfile, /apt-get install[^\n]*\bffmpeg\b/)
    assert.match(dockerfile, /^HEALTHCHECK [\s\S]*\/healthz/m)
    assert.match(dockerfile, /COPY --from=build \/app\/config \.\/config/, 'config/default.json ships with the image')
  })

  test('every variable compose sets is one the config knows, and together they load', () => {
    const known = knownEnvNames()
    assert.ok(known.has('DATABASE_URL') && known.has('METRICS_TOKEN'), 'the ENV_NAMES table was found')
    const env = composeEnvironment()
    assert.ok(env.size >= 8)
    for (const name of env.keys()) assert.ok(known.has(name), `${name} is a config variable`)
    const image = Object.fromEntries([...dockerfile.matchAll(/^\s+(\w+)=(\S+?)(?: \\)?$/gm)].map((m) => [m[1]!, m[2]!]))
    for (const name of Object.keys(image)) if (name !== 'NODE_ENV') assert.ok(known.has(name), `${name} (Dockerfile ENV) is a config variable`)
    const config = loadConfig({...image, ...Object.fromEntries(env)})
    assert.equal(config.nodeId, 'node3')
    assert.equal(config.originalRetention, undefined, 'ORIGINAL_RETENTION=off keeps originals')
  })

  test('haproxy fronts the three nodes with deploy/haproxy.cfg, and each node has its own volume', () => {
    assert.match(compose, /\.\/deploy\/haproxy\.cfg:\/usr\/local\/etc\/haproxy\/haproxy\.cfg:ro/)
    for (const n of [1, 2, 3]) {
      assert.match(compose, new RegExp(`NODE${n}_ADDR: node${n}:1080`))
      assert.match(compose, new RegExp(`^  node${n}:\\n(?:    .*\\n)*    volumes: \\["node${n}-data:/data"\\]`, 'm'))
    }
    const cfg = read('deploy/haproxy.cfg')
    assert.match(cfg, /balance roundrobin/)
    assert.match(cfg, /option httpchk GET \/readyz/)
    assert.doesNotMatch(cfg, /^\s*option http-buffer-request/m)
  })

  test('haproxy accepts deploy/haproxy.cfg', () => {
    const env = {PATH: process.env.PATH ?? '', HAPROXY_BIND: '127.0.0.1:18080', NODE1_ADDR: '127.0.0.1:1081', NODE2_ADDR: '127.0.0.1:1082', NODE3_ADDR: '127.0.0.1:1083'}
    const result = spawnSync('haproxy', ['-c', '-f', path.join(root, 'deploy/haproxy.cfg')], {env, encoding: 'utf8'})
    assert.ok(!result.error, `haproxy is not installed (.ci/run installs Debian's haproxy): ${result.error?.message}`)
    assert.equal(result.status, 0, result.stdout + result.stderr)
  })
})

/** The limit: PUT /files/<name>?offset=<n> piped straight into the file, nothing else. */
import {createWriteStream} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import {announceReady, serverOptions} from '../lib/servers.js'

const {workDir} = serverOptions()
const directory = path.join(workDir, 'files')
await mkdir(directory, {recursive: true})

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const name = /^\/files\/([A-Za-z0-9-]{1,64})$/.exec(url.pathname)?.[1]
  const offset = Number(url.searchParams.get('offset') ?? '0')
  if (req.method !== 'PUT' || !name || !Number.isSafeInteger(offset) || offset < 0) {
    res.writeHead(400).end()
    return
  }
  const file = createWriteStream(path.join(directory, name), {flags: offset === 0 ? 'w' : 'r+', start: offset})
  pipeline(req, file).then(
    () => res.writeHead(204).end(),
    () => res.writeHead(500).end()
  )
})
server.requestTimeout = 0
server.keepAliveTimeout = 65_000
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const {port} = server.address() as AddressInfo

announceReady({url: `http://127.0.0.1:${port}`, storageDir: directory}, async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

/** The baseline: @tus/server + @tus/file-store on node:http, as their README sets them up. */
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {mkdir} from 'node:fs/promises'
import {FileStore} from '@tus/file-store'
import {Server} from '@tus/server'
import {announceReady, serverOptions} from '../lib/servers.js'

const {workDir} = serverOptions()
const directory = path.join(workDir, 'files')
await mkdir(directory, {recursive: true})
const tus = new Server({path: '/files', datastore: new FileStore({directory})})
const server = http.createServer((req, res) => void tus.handle(req, res))
// Same socket settings as our node, so neither side wins on timeouts.
server.requestTimeout = 0
server.keepAliveTimeout = 65_000
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const {port} = server.address() as AddressInfo

announceReady({url: `http://127.0.0.1:${port}`, storageDir: directory}, async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

/**
 * An upload's bytes as a local file for ffmpeg: this node's own file, or a temporary copy
 * fetched from the node that holds it (with several nodes, a job may run anywhere).
 */
import {randomBytes} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, rm} from 'node:fs/promises'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import {uploadFilePath} from '../src/uploads/upload-files.js'
import type {ConsumerDeps} from './consumer-deps.js'

export function uploadSource(deps: ConsumerDeps) {
  return async (upload: {id: string; nodeId: string}) => {
    const local = uploadFilePath(deps.config.dataDir, upload.id)
    if (upload.nodeId === deps.config.nodeId || !deps.cluster?.enabled) return {path: local, release: async () => {}}
    const dir = path.join(deps.config.dataDir, 'tmp')
    await mkdir(dir, {recursive: true})
    const copy = path.join(dir, `.source-${upload.id}-${randomBytes(4).toString('hex')}`)
    try {
      await pipeline(await deps.cluster.openUploadContent(upload.nodeId, upload.id), createWriteStream(copy))
    } catch (error) {
      await rm(copy, {force: true})
      throw error
    }
    return {path: copy, release: () => rm(copy, {force: true})}
  }
}

/**
 * Artifacts as the media consumers leave them on a node, for the cluster tests: each file under
 * the node's media directory for the upload, and its row in `artifacts` (kind and rendition
 * from the path: `720p/segment0.ts` is an HLS segment of 720p, `poster.jpg` a poster).
 */
import {createHash} from 'node:crypto'
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {contentTypeOf} from '../../src/media/artifact-files.js'
import {wireHasher} from '../../src/media/wire-hash.js'

export interface Queryable {
  query(sql: string, params: unknown[]): Promise<unknown>
}

export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

/** The artifact's wire hash (src/media/wire-hash.ts), as describeFile takes it. */
export async function xxh128(data: Buffer): Promise<string> {
  const hasher = await wireHasher()
  hasher.update(data)
  return hasher.digest('hex')
}

/** `wireHash: false`: rows as made before artifacts had a wire hash (verified by sha256). */
export async function placeArtifacts(db: Queryable, node: {id: string; dataDir: string}, uploadId: string, files: Record<string, Buffer>, options: {wireHash?: boolean} = {}): Promise<void> {
  for (const [relative, data] of Object.entries(files)) {
    const file = path.join(node.dataDir, 'media', uploadId, ...relative.split('/'))
    await mkdir(path.dirname(file), {recursive: true})
    await writeFile(file, data)
    const kind = relative.endsWith('.mp4') ? 'mp4' : relative.endsWith('.jpg') ? 'poster' : 'hls'
    const rendition = relative.includes('/') ? relative.split('/')[0]! : ''
    await db.query(
      `INSERT INTO artifacts (upload_id, kind, rendition, path, size, sha256, xxh128, content_type, node_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now())`,
      [uploadId, kind, rendition, relative, data.length, sha256(data), options.wireHash === false ? null : await xxh128(data), contentTypeOf(relative) ?? 'application/octet-stream', node.id]
    )
  }
}

/** How many of the upload's artifacts `nodeId` holds a verified copy of (a `replicas` row with the artifact's sha256). */
export async function verifiedReplicas(db: {query(sql: string, params: unknown[]): Promise<{rows: unknown[]}>}, uploadId: string, nodeId: string): Promise<number> {
  const {rows} = await db.query(`SELECT count(*)::int AS n FROM replicas r JOIN artifacts a ON a.id = r.artifact_id WHERE a.upload_id = $1 AND r.node_id = $2 AND r.sha256 = a.sha256`, [uploadId, nodeId])
  return (rows[0] as {n: number}).n
}

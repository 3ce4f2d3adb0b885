/** transcode jobs: probe, then MP4 + HLS ladder; the upload is ready at its first rendition (src/media). */
import {resolvePolicies} from '../src/jobs/pipeline.js'
import type {JobHandler} from '../src/jobs/registry.js'
import {mediaJobHandler, openMediaJobs} from '../src/media/index.js'
import type {ConsumerDeps} from './consumer-deps.js'
import {uploadSource} from './upload-source.js'

export function transcodeHandler(deps: ConsumerDeps): JobHandler<'transcode'> {
  return mediaJobHandler(openMediaJobs({...deps, acquireSource: uploadSource(deps)}), 'transcode', resolvePolicies(deps.config).transcode.attempts)
}

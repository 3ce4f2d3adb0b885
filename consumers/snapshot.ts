/** snapshot jobs: poster, thumbnails, storyboard sprite + WebVTT (src/media). */
import {resolvePolicies} from '../src/jobs/pipeline.js'
import type {JobHandler} from '../src/jobs/registry.js'
import {mediaJobHandler, openMediaJobs} from '../src/media/index.js'
import type {ConsumerDeps} from './consumer-deps.js'
import {uploadSource} from './upload-source.js'

export function snapshotHandler(deps: ConsumerDeps): JobHandler<'snapshot'> {
  return mediaJobHandler(openMediaJobs({...deps, acquireSource: uploadSource(deps)}), 'snapshot', resolvePolicies(deps.config).snapshot.attempts)
}

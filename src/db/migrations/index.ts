import {CreateUploads1732540000000} from './1732540000000-create-uploads.js'
import {CreateJobs1732600000000} from './1732600000000-create-jobs.js'
import {CreateArtifacts1732700000000} from './1732700000000-create-artifacts.js'
import {UploadConcatAndChecksum1732800000000} from './1732800000000-upload-concat-and-checksum.js'
import {CreateCluster1732900000000} from './1732900000000-create-cluster.js'
import {UploadRetention1733000000000} from './1733000000000-upload-retention.js'

import {DropHashState1733100000000} from './1733100000000-drop-hash-state.js'
import {JobReruns1733200000000} from './1733200000000-job-reruns.js'
import {ArtifactPerPath1733300000000} from './1733300000000-artifact-per-path.js'
import {CallerLimits1733400000000} from './1733400000000-caller-limits.js'
import {Webhooks1733550000000} from './1733550000000-webhooks.js'
import {EventRetention1733700000000} from './1733700000000-event-retention.js'
import {ArtifactWireHash1733800000000} from './1733800000000-artifact-wire-hash.js'
import {JobSummary1733900000000} from './1733900000000-job-summary.js'

/** Every migration, in order. A new one is added here and nowhere else. */
export const migrations = [CreateUploads1732540000000, CreateJobs1732600000000, CreateArtifacts1732700000000, UploadConcatAndChecksum1732800000000, CreateCluster1732900000000, UploadRetention1733000000000, DropHashState1733100000000, JobReruns1733200000000, ArtifactPerPath1733300000000, CallerLimits1733400000000, Webhooks1733550000000, EventRetention1733700000000, ArtifactWireHash1733800000000, JobSummary1733900000000]

import {CreateUploads1732540000000} from './1732540000000-create-uploads.js'

/** Every migration, in order. A new one is added here and nowhere else. */
export const migrations = [CreateUploads1732540000000]

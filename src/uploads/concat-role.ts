/** An upload's part in tus concatenation, as its row records it (`uploads.upload_concat`). */
import type {UploadRecord} from '../db/entities/upload.js'

/** A partial upload: bytes that a final upload will take in. */
export const PARTIAL = 'partial'

/** A final upload: `final;<the partials' URLs>`, assembled from them. */
export const isFinal = (row: Pick<UploadRecord, 'uploadConcat'>) => row.uploadConcat?.startsWith('final;') === true

/**
 * The upload state machine: one enum and its allowed transitions. Later stages (processing,
 * ready) belong to the media pipeline; they are listed here so every state lives in one place.
 */
export const UploadStatus = {
  Uploading: 'uploading',
  Completed: 'completed',
  Processing: 'processing',
  Ready: 'ready',
  Failed: 'failed',
  Expired: 'expired',
  Terminated: 'terminated',
} as const
export type UploadStatus = (typeof UploadStatus)[keyof typeof UploadStatus]

export const UPLOAD_STATUSES = Object.values(UploadStatus)

const transitions: Record<UploadStatus, readonly UploadStatus[]> = {
  uploading: ['completed', 'expired', 'terminated', 'failed'],
  completed: ['processing', 'ready', 'failed', 'terminated'],
  processing: ['ready', 'failed', 'terminated'],
  ready: ['processing', 'terminated'],
  failed: ['processing', 'terminated'],
  expired: [],
  terminated: [],
}

export function canTransition(from: UploadStatus, to: UploadStatus): boolean {
  return transitions[from].includes(to)
}

/** States in which the upload no longer exists for the tus protocol (410 Gone). */
export function isGone(status: UploadStatus): boolean {
  return status === UploadStatus.Expired || status === UploadStatus.Terminated
}

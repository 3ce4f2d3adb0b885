/** Where an upload's bytes live on the node that received it: `<dataDir>/uploads/<id>`. */
import path from 'node:path'

export const uploadsDirectory = (dataDir: string) => path.join(dataDir, 'uploads')

/** The one place an upload's file name is made, from the uploads directory (the store knows only that). */
export const uploadFileIn = (uploadsDir: string, uploadId: string) => path.join(uploadsDir, uploadId)

export const uploadFilePath = (dataDir: string, uploadId: string) => uploadFileIn(uploadsDirectory(dataDir), uploadId)

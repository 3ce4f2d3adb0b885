/** Where an upload's bytes live on the node that received it: `<dataDir>/uploads/<id>`. */
import path from 'node:path'

export const uploadsDirectory = (dataDir: string) => path.join(dataDir, 'uploads')

export const uploadFilePath = (dataDir: string, uploadId: string) => path.join(uploadsDirectory(dataDir), uploadId)

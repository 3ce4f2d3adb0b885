/**
 * A tus-js-client upload in its own process, with a file-based URL store: what an app does
 * across restarts. Usage: tsx tus-js-child.ts <endpoint> <file> <url-store> [stop-after-bytes]
 * Prints JSON lines: {"resumedFrom": n}, {"progress": n}, {"done": url}.
 */
import {createReadStream, statSync} from 'node:fs'
import * as tus from 'tus-js-client'

// The Node build exports FileUrlStorage; the package's types do not declare it.
const {FileUrlStorage} = tus as unknown as {FileUrlStorage: new (path: string) => tus.UrlStorage}
const [endpoint, file, store, stopAfter] = process.argv.slice(2) as [string, string, string, string | undefined]
const size = statSync(file).size
const upload = new tus.Upload(createReadStream(file) as never, {
  endpoint,
  uploadSize: size,
  chunkSize: 256 * 1024,
  metadata: {filename: 'phone-video.mp4', filetype: 'video/mp4'},
  urlStorage: new FileUrlStorage(store),
  fingerprint: async () => `file:${file}:${size}`,
  retryDelays: [0, 100, 200],
  onProgress(sent) {
    console.log(JSON.stringify({progress: sent}))
    // Simulates the app being killed: no clean shutdown, the stored URL stays.
    if (stopAfter && sent >= Number(stopAfter)) process.kill(process.pid, 'SIGKILL')
  },
  onSuccess() {
    console.log(JSON.stringify({done: upload.url}))
  },
  onError(error) {
    console.error(String(error))
    process.exit(1)
  },
})
const previous = await upload.findPreviousUploads()
if (previous.length > 0) {
  upload.resumeFromPreviousUpload(previous[0]!)
  console.log(JSON.stringify({resumedFrom: previous[0]!.uploadUrl}))
}
upload.start()

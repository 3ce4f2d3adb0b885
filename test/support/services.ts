/**
 * The services integration tests talk to. They must be running (`.ci/run` starts them); a test
 * that cannot reach one fails with a message saying which, never skips.
 */
import net from 'node:net'

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'

export async function requireService(name: string, url: string): Promise<void> {
  const {hostname, port} = new URL(url)
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({host: hostname, port: Number(port), timeout: 3000})
    socket.once('connect', () => {
      socket.destroy()
      resolve()
    })
    const fail = () => {
      socket.destroy()
      reject(new Error(`${name} is not reachable at ${hostname}:${port}; start it (see .ci/run) before running the tests`))
    }
    socket.once('error', fail)
    socket.once('timeout', fail)
  })
}

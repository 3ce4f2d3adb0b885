import type {BuildOptions} from 'esbuild'
export const options: BuildOptions
/** Bundles web/src into web/dist. */
export function buildWeb(): Promise<void>

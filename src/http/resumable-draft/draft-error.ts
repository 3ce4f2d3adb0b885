/**
 * A refusal in the draft's terms: its status, a reason for people, the headers the draft asks
 * for (Upload-Offset on a 409, Upload-Limit on a 413...), and, where the interop version has
 * one, the problem type (RFC 9457) to answer with instead of plain text.
 */
import {AppError} from '../../errors.js'
import type {ProblemType} from './interop.js'

export class DraftError extends AppError {
  override name = 'DraftError'
  constructor(
    status: number,
    message: string,
    readonly problem?: {type: ProblemType; members?: Record<string, number>},
    headers: Record<string, string> = {}
  ) {
    super(status, message, headers)
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

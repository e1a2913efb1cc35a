import { AigateError } from '../util/errors.js'

/** A failed system or netlink call. Thrown by {@link Queue} methods; constructed by the addon too. */
export class QueueError extends AigateError {
  /** Error name in Node's style: 'EPERM', 'EBUSY', 'EBADF', ... */
  readonly code: string
  /** Negative errno, as `err.errno` of Node's own system errors. */
  readonly errno: number
  /** The failed operation: 'socket', 'bind', 'NFQNL_CFG_CMD_BIND', 'recv', 'sendmsg', ... */
  readonly syscall: string

  constructor(message: string, code: string, errno: number, syscall: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.errno = errno
    this.syscall = syscall
  }
}
Object.defineProperty(QueueError.prototype, 'name', { value: 'QueueError', enumerable: false, writable: true, configurable: true })

/** The error of a failed open, reworded for an admin: what EPERM and EBUSY mean here. */
export function explainOpenError(err: unknown, queueNum: number): unknown {
  if (!(err instanceof QueueError)) return err
  let message: string
  if (err.code === 'EPERM') {
    message = `cannot open NFQUEUE ${queueNum}: operation not permitted (EPERM); the process needs CAP_NET_ADMIN in its network namespace`
  } else if (err.code === 'EBUSY') {
    message = `cannot open NFQUEUE ${queueNum}: queue ${queueNum} is already bound by another socket (EBUSY); stop the other consumer or use another queue number`
  } else {
    message = `cannot open NFQUEUE ${queueNum}: ${err.message}`
  }
  return new QueueError(message, err.code, err.errno, err.syscall, { cause: err })
}

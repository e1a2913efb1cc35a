import { notifySocket } from '../native/index.js'

/**
 * sd_notify(3) for `Type=notify`: a datagram to $NOTIFY_SOCKET (a path, or
 * `@name` for the abstract namespace). Node has no unix datagram socket, so
 * the addon sends it (native/src/notify.c). Outside systemd there is no
 * socket and this does nothing; a failure is never fatal (the daemon serves
 * its queues whether systemd hears it or not).
 */
export function sdNotify (state: string): boolean {
  const path = process.env.NOTIFY_SOCKET
  if (path === undefined || path === '') return false
  return notifySocket(path, state)
}

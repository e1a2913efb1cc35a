/**
 * The whole QUIC unit and hostile suites again, with Initials opened through
 * node:crypto instead of the addon (native/src/quic_crypto.cc): both paths
 * must pass the same tests. test/unit/extract/quic-native.test.ts compares the two
 * paths result by result.
 */
import { quicNativeCrypto } from '../../../src/extract/quic.js'

quicNativeCrypto(false)
await import('./quic.test.js')
await import('../../hostile/quic.test.js')

const { default: t } = await import('tap')
t.test('the suites above ran on node:crypto', async (t) => {
  t.notOk(quicNativeCrypto(), 'quicNativeCrypto() stayed false')
})

import { hasCommand, tryRun } from './exec.js'
import { iptablesBackend } from './iptables.js'
import { withFirewallLock } from './lock.js'
import { nftBackend, nftWorks, NFT_TABLE } from './nft.js'
import { resolveOptions, type BackendName, type Firewall, type FirewallOptions, type FirewallStatus } from './options.js'

/**
 * Kernel rules that send the packets able to carry a name (TLS/HTTP/DoT
 * handshakes, QUIC Initials, DNS) to NFQUEUE, save the daemon's verdict mark
 * into the connection (CONNMARK), and act on it for every later packet of
 * the flow, which therefore never leaves the kernel.
 *
 * Two backends behind one interface: `nft` (one `inet aigate` table, for
 * kernels with the nftables `queue` expression) and `iptables` (AIGATE chains
 * in mangle and filter, for kernels without it, or when asked). With
 * `backend: 'auto'` (the default) `detectBackend` picks one.
 *
 *   import { up, down, status } from './fw/index.js'
 *   up({ queues: [0, 1, 2, 3], hooks: ['forward'] })   // returns the backend used
 *   status().rules.find((r) => r.name === 'queue-tls-http')?.packets
 *   down()
 */

export { FirewallError, type FirewallErrorCode } from './exec.js'
export { iptablesBackend, iptablesRules, CHAIN, TCP_PAYLOAD_BPF, QUIC_LONG_HEADER_BPF, type Rule, type IpFamily } from './iptables.js'
export { nftBackend, nftRuleset, NFT_TABLE } from './nft.js'
export {
  resolveOptions, DEFAULT_SOURCE_BUDGET,
  type BackendName, type Firewall, type FirewallOptions, type FirewallStatus, type Hook, type IptablesVariant, type RuleCounter,
} from './options.js'

/** The backend object for a name. */
export function firewall (name: BackendName): Firewall {
  return name === 'nft' ? nftBackend : iptablesBackend
}

/**
 * `nft` when the `nft` tool is installed and the kernel accepts our whole
 * ruleset, `queue` expression included (an `nft -c` dry run: nothing is
 * committed); `iptables` otherwise (no nft, or a kernel without
 * CONFIG_NFT_QUEUE, as on the test machines).
 */
export function detectBackend (opts: FirewallOptions = {}): BackendName {
  const o = resolveOptions(opts)
  if (!hasCommand({ netns: o.netns }, 'nft')) return 'iptables'
  return nftWorks(opts) ? 'nft' : 'iptables'
}

/** Install the rules (idempotent); returns the backend used. */
export function up (opts: FirewallOptions = {}): BackendName {
  const o = resolveOptions(opts)
  // Read-then-write: one firewall command per namespace at a time (fw/lock.ts).
  return withFirewallLock({ netns: o.netns }, () => {
    const name = o.backend === 'auto' ? detectBackend(opts) : o.backend
    firewall(name).up(opts)
    return name
  })
}

/**
 * Remove the rules (idempotent, fine on a clean host). With `backend: 'auto'`
 * both backends are cleaned, each where its tools are installed, so rules
 * from an `up` with either backend go.
 */
export function down (opts: FirewallOptions = {}): void {
  const o = resolveOptions(opts)
  const ctx = { netns: o.netns }
  withFirewallLock(ctx, () => {
    if (o.backend !== 'auto') { firewall(o.backend).down(opts); return }
    if (hasCommand(ctx, 'nft')) nftBackend.down(opts)
    if (hasCommand(ctx, o.iptables === 'default' ? 'iptables' : `iptables-${o.iptables}`)) iptablesBackend.down(opts)
  })
}

/**
 * Installed or not, which backend, and every rule's packet counter. With
 * `backend: 'auto'`: the nft table if there is one, else the iptables rules.
 */
export function status (opts: FirewallOptions = {}): FirewallStatus {
  const o = resolveOptions(opts)
  const ctx = { netns: o.netns }
  // Under the lock too, so it never shows an `up` half done.
  return withFirewallLock(ctx, () => {
    if (o.backend !== 'auto') return firewall(o.backend).status(opts)
    if (hasCommand(ctx, 'nft') && tryRun(ctx, 'nft', ['list', 'table', 'inet', NFT_TABLE]).ok) return nftBackend.status(opts)
    return iptablesBackend.status(opts)
  })
}

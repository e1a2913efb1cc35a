import { FirewallError, hasCommand, tryRun } from './exec.js'
import { iptablesBackend, iptablesUpInput } from './iptables.js'
import { withFirewallLock } from './lock.js'
import { nftBackend, nftCheck, nftUpInput, nftWorks, NFT_TABLE } from './nft.js'
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
 *   print({ backend: 'iptables' }).text   // what up feeds the tools; runs nothing
 */

export { FirewallError, type FirewallErrorCode } from './exec.js'
export { iptablesBackend, iptablesRules, iptablesUpInput, CHAIN, TCP_PAYLOAD_BPF, QUIC_LONG_HEADER_BPF, type Rule, type IpFamily } from './iptables.js'
export { nftBackend, nftRuleset, nftUpInput, NFT_TABLE } from './nft.js'
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
 * What `up` would install, without installing anything: the exact text `up`
 * feeds to the tools (the same functions build it, iptablesUpInput and
 * nftUpInput). iptables: one iptables-restore input per family, IPv4 first,
 * each starting with a comment line that names its tool; on a host without
 * aigate's rules `up` feeds exactly these. nft: the `nft -f` input, which
 * `up` feeds whatever is installed. With a backend given, no command runs
 * and no root is needed; with `auto`, detecting it asks the kernel (`nft -c`),
 * which needs root when nft is installed.
 */
export function print (opts: FirewallOptions = {}): { backend: BackendName, text: string } {
  const o = resolveOptions(opts)
  const name = o.backend === 'auto' ? detectForPrint(opts) : o.backend
  const text = name === 'nft' ? nftUpInput(opts) : iptablesUpInput(opts).map((f) => f.input).join('')
  return { backend: name, text }
}

/** detectBackend, but a refusal for want of privileges is an error, not "no nft queue expression". */
function detectForPrint (opts: FirewallOptions): BackendName {
  const o = resolveOptions(opts)
  if (!hasCommand({ netns: o.netns }, 'nft')) return 'iptables'
  const refused = nftCheck(opts)
  if (refused === null) return 'nft'
  if (refused.code !== 'EPERM') return 'iptables'
  throw new FirewallError(`cannot tell which backend up would use without root (${refused.message}); give --backend iptables or --backend nft`,
    'EPERM', refused.command, refused.stderr, refused.status)
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

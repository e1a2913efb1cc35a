import { up, down } from '../fw/index.js'

/** The demo's gateway rules: queue 0 on the forward hook of the gateway namespace. */
export function firewallUp (ns: string): void { up({ netns: ns, queues: [0], hooks: ['forward'] }) }
export function firewallDown (ns: string): void { down({ netns: ns, queues: [0], hooks: ['forward'] }) }

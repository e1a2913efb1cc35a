/** Placeholder until src/fw lands: replaced by direct calls. */
export function firewallUp (_ns: string): void { throw new Error('firewall module missing') }
export function firewallDown (_ns: string): void {}

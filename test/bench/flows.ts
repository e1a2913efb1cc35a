/** Flow-table benchmarks arrive with the evasion issue; nothing to run yet. */
export function runFlowBench (_say: (s: string) => void, _results: Record<string, unknown>, _quick: boolean): void {}

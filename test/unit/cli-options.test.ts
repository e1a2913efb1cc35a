import t from 'tap'
import { buildProgram, main, MAX_CACHE_SIZE } from '../../src/cli/main.js'

/**
 * The command line run in this process: what it writes through
 * process.stdout/stderr and the exit status it sets.
 */
async function aigate (...args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = process.stdout.write
  const err = process.stderr.write
  process.stdout.write = ((s: string | Uint8Array) => { stdout += String(s); return true }) as typeof process.stdout.write
  process.stderr.write = ((s: string | Uint8Array) => { stderr += String(s); return true }) as typeof process.stderr.write
  const before = process.exitCode
  process.exitCode = 0
  try {
    await main(args)
  } finally {
    process.stdout.write = out
    process.stderr.write = err
  }
  const status = Number(process.exitCode ?? 0)
  process.exitCode = before
  return { status, stdout, stderr }
}

t.test('--cache-size has an upper bound, said in --help; beyond it is a usage error', async (t) => {
  t.equal(MAX_CACHE_SIZE, 16777216)
  for (const cmd of [['classify', 'x.pcap'], ['capture', 'eth0'], ['run']]) {
    for (const v of ['16777217', '1e12', '0']) {
      const r = await aigate(cmd[0] as string, '--cache-size', v, ...cmd.slice(1))
      t.equal(r.status, 2, `${cmd[0]} --cache-size ${v}: exit 2`)
      t.equal(r.stderr, `aigate: --cache-size must be an integer from 1 to 16777216, got "${v}"\n`)
    }
    const help = buildProgram().commands.find((c) => c.name() === cmd[0])?.helpInformation()
    t.match(help, /--cache-size <n>\s+decision cache entries( per queue)?, 1 to 16777216\s+\(default:\s+65536\)/)
  }
})

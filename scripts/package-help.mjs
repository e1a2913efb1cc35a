#!/usr/bin/env node
// The man page's command sections and the bash completion, generated from the
// CLI's own commander program, so they list exactly what `aigate --help` and
// each subcommand's --help say. Run by debian/rules (npm run package):
//
//   node scripts/package-help.mjs APPDIR man-include   help2man --include file: one section per subcommand
//   node scripts/package-help.mjs APPDIR completion    a bash completion script for `aigate`
//
// APPDIR holds dist/src/cli/main.js (the staging tree's app/, or . in a checkout).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { resolve, join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [appDir, mode] = process.argv.slice(2)
if (appDir === undefined || (mode !== 'man-include' && mode !== 'completion')) {
  process.stderr.write('usage: package-help.mjs APPDIR man-include|completion\n')
  process.exit(2)
}
// Help text is wrapped to the terminal's width; a fixed width makes the output reproducible.
process.stdout.columns = 80
// --rules and --policy default to /etc/aigate once it holds policy.yaml, and
// --help says which (src/config defaultPaths). The page describes an
// installed aigate whatever the build machine has: the CLI is pointed
// (AIGATE_ETC) at a stand-in root with a policy.yaml, whose path is then
// written back as /etc/aigate before the help is laid out.
const etc = mkdtempSync(join(tmpdir(), 'aigate-help-'))
writeFileSync(join(etc, 'policy.yaml'), '')
process.env.AIGATE_ETC = etc
const app = resolve(appDir)
const { buildProgram } = await import(pathToFileURL(join(app, 'dist', 'src', 'cli', 'main.js')).href)
const program = buildProgram()
rmSync(etc, { recursive: true, force: true })
const installed = (v) => typeof v === 'string' ? v.replaceAll(etc, '/etc/aigate') : v

/** Every command below the program, depth first, with its path of names ('firewall up'). */
function commands (cmd, path = []) {
  const out = []
  for (const o of cmd.options) {
    o.defaultValue = installed(o.defaultValue)
    o.defaultValueDescription = installed(o.defaultValueDescription)
  }
  for (const sub of cmd.commands) {
    if (sub._hidden === true) continue
    const p = [...path, sub.name()]
    out.push({ cmd: sub, path: p })
    out.push(...commands(sub, p))
  }
  return out
}

/** roff: a backslash is \e; a line starting with . or ' would be a request. */
const roff = (text) => text.split('\n').map((l) => l.replaceAll('\\', '\\e').replace(/^([.'])/, '\\&$1')).join('\n')

/** The program's --help as printed, its after-text (examples, exit status) included. */
function fullHelp (cmd) {
  let out = ''
  cmd.configureOutput({ writeOut: (str) => { out += str } })
  cmd.outputHelp()
  return out
}

function manInclude () {
  // help2man would fill "Examples:" into one paragraph: the lines as printed instead.
  const main = fullHelp(program)
  const at = main.indexOf('\nExamples:\n')
  const parts = at < 0 ? [] : ['[EXAMPLES]', '.nf', roff(main.slice(at + '\nExamples:\n'.length).trimEnd()), '.fi', '']
  parts.push('[COMMANDS]', 'Each command\'s own --help:', '')
  for (const { cmd, path } of commands(program)) {
    parts.push(`.SS "aigate ${path.join(' ')}"`, '.nf', roff(cmd.helpInformation().trimEnd()), '.fi', '')
  }
  parts.push('[FILES]',
    '.TP', '.I /etc/aigate/policy.yaml', 'The policy: vendors and categories to block, reject, monitor or allow (a conffile).',
    '.TP', '.I /etc/aigate/rules/', 'The vendor lists, one *.txt per vendor (conffiles).',
    '.TP', '.I /lib/systemd/system/aigate.service', 'The unit: firewall up, then run as user aigate with CAP_NET_ADMIN only. Not enabled by the package.',
    '.TP', '.I /etc/logrotate.d/aigate', 'Rotation of /var/log/aigate/decisions.ndjson (run --log), with SIGUSR2 to reopen it.',
    '.TP', '.I /usr/share/doc/aigate/', 'README.md and README.systemd.md: the full documentation.',
    '')
  return parts.join('\n')
}

/** A value an option takes: its choices, files, or nothing to offer. */
function valueKind (opt) {
  if (Array.isArray(opt.argChoices)) return opt.argChoices.join(' ')
  if (/<(file|dir|path)>/.test(opt.flags)) return opt.flags.includes('<dir>') ? '@dir' : '@file'
  return '@none'
}

const sh = (s) => `'${s.replaceAll("'", "'\\''")}'`

function completion () {
  const rows = [{ cmd: program, path: [] }, ...commands(program)]
  const subs = []
  const opts = []
  const values = []
  const args = []
  for (const { cmd, path } of rows) {
    // bash refuses an empty key: the program itself is 'aigate'.
    const key = ['aigate', ...path].join(' ')
    subs.push(`  [${sh(key)}]=${sh(cmd.commands.filter((c) => c._hidden !== true).map((c) => c.name()).join(' '))}`)
    const names = []
    for (const o of [...cmd.options, cmd._getHelpOption?.() ?? null]) {
      if (o === null || o === undefined) continue
      for (const n of [o.short, o.long]) {
        if (n === undefined || n === null) continue
        names.push(n)
        if (o.required || o.optional) values.push(`  [${sh(`${key}|${n}`)}]=${sh(valueKind(o))}`)
      }
    }
    opts.push(`  [${sh(key)}]=${sh(names.join(' '))}`)
    // Positional arguments that name files: complete file names.
    if (cmd.registeredArguments.some((a) => /file|log/.test(a.name()))) args.push(`  [${sh(key)}]=@file`)
  }
  return `# bash completion for aigate. Generated from the CLI's commander program by
# scripts/package-help.mjs (npm run package); do not edit.

declare -gA _aigate_subs=(
${subs.join('\n')}
)
declare -gA _aigate_opts=(
${opts.join('\n')}
)
declare -gA _aigate_values=(
${values.join('\n')}
)
declare -gA _aigate_args=(
${args.join('\n')}
)

_aigate() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local path=aigate i w
  # The command path: each word that names a subcommand of the path so far.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ " \${_aigate_subs[$path]} " == *" $w "* ]]; then
      path="$path $w"
    fi
  done
  local kind=\${_aigate_values["$path|$prev"]-}
  if [[ -n $kind ]]; then
    case $kind in
      @file) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
      @dir) COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null ;;
      @none) COMPREPLY=() ;;
      *) COMPREPLY=($(compgen -W "$kind" -- "$cur")) ;;
    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "\${_aigate_opts[$path]}" -- "$cur"))
    return 0
  fi
  COMPREPLY=($(compgen -W "\${_aigate_subs[$path]}" -- "$cur"))
  if [[ \${_aigate_args[$path]-} == @file ]]; then
    COMPREPLY+=($(compgen -f -- "$cur"))
    compopt -o filenames 2>/dev/null
  fi
  return 0
}
complete -F _aigate aigate
`
}

const text = mode === 'man-include' ? manInclude() : completion()
// A path of the build tree in the page would be a default the CLI computed from where it ran.
for (const p of [etc, app]) {
  if (text.includes(p)) {
    process.stderr.write(`package-help: the output names the build path ${p}\n`)
    process.exit(1)
  }
}
process.stdout.write(text)

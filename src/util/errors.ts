/**
 * The base of every error that reaches the user at an edge: a bad rule or
 * policy file, an unreadable capture, a firewall command that failed, a queue
 * that would not bind, a wrong command line. The CLI prints `problems` (one
 * line each, already phrased for an admin, as `aigate: <problem>`) and exits
 * with `exitCode`; anything that is not an AigateError is a bug and keeps its
 * stack under AIGATE_DEBUG.
 */
export abstract class AigateError extends Error {
  /** The process exit status the CLI uses for this error: 2 for usage, 1 otherwise. */
  get exitCode (): number { return 1 }
  /** The lines to print, one problem each; most errors have one. */
  get problems (): readonly string[] { return [this.message] }
}

// US-ASCII bytes the request-head reader (http.ts, http/hosts.ts) compares with.
export const CR = 0x0d
export const LF = 0x0a
export const SP = 0x20
export const HT = 0x09
export const COLON = 0x3a
export const LBRACKET = 0x5b
export const RBRACKET = 0x5d
export const SLASH = 0x2f
export const BACKSLASH = 0x5c
export const QUESTION = 0x3f
export const HASH = 0x23
export const AT = 0x40
export const DOT = 0x2e

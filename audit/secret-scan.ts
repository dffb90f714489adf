// What may never leave the machine inside a packed run: a file named like a secret (.env, id_rsa,
// *.pem…), anything credential-shaped (errors/redact.ts decides what that is: connection strings
// with a password, password=…, private keys, AWS keys…) or a configured secret value, in any file
// that goes into the archive. Files are scanned as their bytes stream into the archive, line by line,
// with a bounded window for very long lines, so a run of any size is scanned in constant memory.
import path from 'node:path';
import { describeCredential, findCredentials } from '../errors/redact.ts';

export interface SecretFinding {
  /** Which file of the run (relative path). */
  file: string;
  /** `line 12`, or `file name`. */
  where: string;
  /** What was found, already redacted: never the secret itself. */
  what: string;
}

export interface ScanResult {
  /** The first findings (at most MAX_SHOWN per file). */
  findings: SecretFinding[];
  /** All findings, shown or not. */
  total: number;
}

const MAX_SHOWN = 5;
// A line longer than this is scanned in windows of this size that overlap by OVERLAP bytes, so
// a credential across a window's edge is still seen whole (credentials are short).
const WINDOW = 256 << 10;
const OVERLAP = 16 << 10;

const SECRET_FILE_NAMES = [
  /^\.env(\..+)?$/i,
  /^id_(rsa|dsa|ecdsa|ed25519)(_sk)?$/,
  /\.(pem|key|p12|pfx|jks|keystore|ppk|kdbx|gpg)$/i,
  /^\.(pgpass|netrc|npmrc|git-credentials|my\.cnf)$/,
  /^credentials(\.json)?$/i,
  /^secrets?\.(ya?ml|json|env|txt)$/i,
];

/** Why a file's name marks it as a secret (a key, an environment file), or null. */
export function secretFileName(file: string): string | null {
  const base = path.posix.basename(file);
  return SECRET_FILE_NAMES.some((re) => re.test(base)) ? `a file named like a secret (${base}: keys, environment and credential files never go into an archive)` : null;
}

/**
 * Scans one file's bytes as they pass (as `etl pack` reads them): `write` each chunk in order, then
 * `end`. Lines are cut at newlines; a line longer than WINDOW is scanned in windows. `cleared` says
 * how many bytes are scanned for good (whole lines, windows before the overlap): only those may be
 * written anywhere, so not even the first half of a credential reaches a disk before it is seen.
 */
export class SecretScan {
  private readonly scanner: LineScanner;
  private carry: Buffer = Buffer.alloc(0);
  private lineNumber = 1;
  // Bytes of the current line already scanned in earlier windows (columns count bytes there).
  private lineOffset = 0;
  /** Bytes written so far. */
  private position = 0;

  constructor(file: string, secrets: readonly string[] = []) {
    this.scanner = new LineScanner(file, secrets);
  }

  /** Bytes scanned for good so far (the rest is an unfinished line, scanned once it ends). */
  get cleared(): number {
    return this.position - this.carry.length;
  }

  /** Findings so far (shown or not). */
  get found(): number {
    return this.scanner.total;
  }

  write(chunk: Buffer): void {
    // Cut into WINDOW pieces counted from the file's start, whatever size the chunks come in.
    for (let at = 0; at < chunk.length; ) {
      const piece = chunk.subarray(at, at + WINDOW - (this.position % WINDOW));
      this.piece(piece);
      at += piece.length;
      this.position += piece.length;
    }
  }

  private piece(chunk: Buffer): void {
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      this.scanner.line(buf.toString('utf8', start, nl), this.lineNumber, this.lineOffset);
      this.lineNumber += 1;
      this.lineOffset = 0;
      start = nl + 1;
    }
    this.carry = buf.subarray(start);
    if (this.carry.length > WINDOW) {
      this.scanner.line(this.carry.toString('utf8'), this.lineNumber, this.lineOffset);
      this.lineOffset += this.carry.length - OVERLAP;
      this.carry = Buffer.from(this.carry.subarray(this.carry.length - OVERLAP));
    }
  }

  end(): ScanResult {
    if (this.carry.length) this.scanner.line(this.carry.toString('utf8'), this.lineNumber, this.lineOffset);
    this.carry = Buffer.alloc(0);
    return this.scanner.result();
  }
}

class LineScanner {
  private readonly findings: SecretFinding[] = [];
  total = 0;
  // A window of a long line is scanned again in part (the overlap): report each line and kind once.
  private readonly seen = new Set<string>();

  constructor(
    private readonly file: string,
    private readonly secrets: readonly string[],
  ) {}

  /** `offset`: where `text` starts in its line (a window of a long line), for the column shown. */
  line(text: string, line: number, offset = 0): void {
    // No excerpt is shown: a cut through a second credential could show part of it.
    for (const hit of findCredentials(text, 'scan')) this.add(line, hit.kind, offset + hit.start + 1, describeCredential(hit.kind));
    for (const secret of this.secrets) {
      const at = secret.length >= 4 ? text.indexOf(secret) : -1;
      if (at !== -1) this.add(line, 'configured', offset + at + 1, 'a configured password or passphrase');
    }
  }

  private add(line: number, kind: string, column: number, what: string): void {
    const key = `${line}:${kind}`;
    if (this.seen.has(key)) return;
    if (this.seen.size > 10_000) this.seen.clear();
    this.seen.add(key);
    this.total += 1;
    if (this.findings.length < MAX_SHOWN) this.findings.push({ file: this.file, where: `line ${line} column ${column}`, what });
  }

  result(): ScanResult {
    return { findings: this.findings, total: this.total };
  }
}

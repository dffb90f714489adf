// Host key verification for SSH tunnels. A tunnel carries database passwords and production data,
// so the server must prove it is the one the user trusts: a line of an OpenSSH known_hosts file or
// a fingerprint set in REMOTE_SERVER_HOST_KEY. An unknown key stops with what to check and how to
// trust it; a key that differs from the trusted one stops loudly. Nothing is ever accepted silently.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError, EtlError, type EtlErrorOptions } from '../errors/etl-error.ts';

/** The key a refused server presented. */
export interface PresentedKey {
  readonly keyType: string;
  readonly fingerprint: string;
}

/** The server's key cannot be trusted (unknown or not configured): the user must act. Exit 2. */
class SshHostKeyUnknownError extends EtlError {
  override name = 'SshHostKeyUnknownError';
  override readonly exitCode = 2 as const;
  constructor(
    message: string,
    readonly presented: PresentedKey,
    options: EtlErrorOptions = {},
  ) {
    super('ssh_host_key_unknown', message, options);
  }
}

/** The server's key differs from the trusted one: possibly a man-in-the-middle. Exit 1. */
class SshHostKeyChangedError extends EtlError {
  override name = 'SshHostKeyChangedError';
  constructor(
    message: string,
    readonly presented: PresentedKey,
    options: EtlErrorOptions = {},
  ) {
    super('ssh_host_key_changed', message, options);
  }
}

/** Host key algorithms ssh2 supports, in its own order of preference. */
const DEFAULT_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const;
export type HostKeyAlgorithm = (typeof DEFAULT_HOST_KEY_ALGORITHMS)[number];

/** A public key as the server sends it: the SSH wire blob. */
export interface HostKey {
  readonly type: string;
  readonly blob: Buffer;
}

function parseKeyBlob(blob: Buffer): HostKey {
  if (blob.length < 4) throw new Error('host key blob too short');
  const len = blob.readUInt32BE(0);
  return { type: blob.subarray(4, 4 + len).toString('latin1'), blob };
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -lf` prints it. */
export function sha256Fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function md5Fingerprint(blob: Buffer): string {
  return `MD5:${createHash('md5').update(blob).digest('hex').replace(/(..)(?!$)/g, '$1:')}`;
}

/** How known_hosts names a server: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The line a user adds to known_hosts to trust this key. */
function knownHostsLine(host: string, port: number, key: HostKey): string {
  return `${knownHostsName(host, port)} ${key.type} ${key.blob.toString('base64')}`;
}

interface KnownHostsEntry {
  readonly line: number;
  readonly marker: 'revoked' | 'cert-authority' | null;
  readonly patterns: string;
  readonly key: HostKey;
}

/** Parses an OpenSSH known_hosts text; malformed lines are skipped, as OpenSSH does. */
function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/\s+/);
    let marker: KnownHostsEntry['marker'] = null;
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue;
    }
    const [patterns, type, base64] = fields;
    if (!patterns || !type || !base64) continue;
    const blob = Buffer.from(base64, 'base64');
    if (blob.length < 4) continue;
    let key: HostKey;
    try {
      key = parseKeyBlob(blob);
    } catch {
      continue;
    }
    if (key.type !== type) continue;
    entries.push({ line: i + 1, marker, patterns, key });
  }
  return entries;
}

/** OpenSSH host pattern matching: `*` and `?` wildcards, `!` negation, `|1|salt|hash` hashed names. */
export function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    const expected = Buffer.from(hash, 'base64');
    const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
  let matched = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (wildcard(body.toLowerCase(), name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function wildcard(pattern: string, text: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(text);
}

export type HostKeyVerdict =
  | { readonly ok: true; readonly key: HostKey; readonly fingerprint: string; readonly via: string }
  | { readonly ok: false; readonly kind: 'unknown' | 'changed' | 'revoked'; readonly key: HostKey; readonly fingerprint: string; readonly expected: readonly string[] };

/** What the user trusts for one server, and how to check a presented key against it. */
export interface HostTrust {
  readonly host: string;
  readonly port: number;
  /** Where trust comes from, for messages: `known_hosts file /x` or `REMOTE_SERVER_HOST_KEY`. */
  readonly source: string;
  readonly knownHostsFile: string;
  /** Host key algorithms to offer, the trusted key types first (so the server shows a key we know). */
  readonly algorithms: HostKeyAlgorithm[];
  verify(blob: Buffer): HostKeyVerdict;
}

/** A REMOTE_SERVER_HOST_KEY value: `SHA256:…`, `MD5:aa:bb:…`, `<type> SHA256:…` or a public key `<type> <base64>`. */
interface PinnedKey {
  readonly type: string | null;
  readonly fingerprint: string;
}

export function parsePinnedKey(value: string): PinnedKey {
  const fields = value.trim().split(/\s+/);
  let type: string | null = null;
  let rest = fields[0] ?? '';
  if (fields.length >= 2) {
    type = fields[0]!;
    rest = fields[1]!;
  }
  if (/^SHA256:[A-Za-z0-9+/]+=*$/.test(rest)) return { type, fingerprint: rest.replace(/=+$/, '') };
  if (/^MD5:([0-9a-f]{2}:){15}[0-9a-f]{2}$/i.test(rest)) return { type, fingerprint: rest.toLowerCase().replace(/^md5/, 'MD5') };
  if (type && /^[A-Za-z0-9+/]+=*$/.test(rest)) {
    const blob = Buffer.from(rest, 'base64');
    try {
      if (parseKeyBlob(blob).type === type) return { type, fingerprint: sha256Fingerprint(blob) };
    } catch {
      // fall through to the error below
    }
  }
  throw new ConfigError('REMOTE_SERVER_HOST_KEY must be a fingerprint like SHA256:abc… (as `ssh-keygen -lf` prints it) or a public key line "<type> <base64>"', [], {
    context: { variable: 'REMOTE_SERVER_HOST_KEY' },
  });
}

function algorithmsFor(types: Iterable<string>): HostKeyAlgorithm[] {
  const preferred: HostKeyAlgorithm[] = [];
  for (const type of types) {
    const algos = type === 'ssh-rsa' ? (['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] as const) : [type];
    for (const a of algos) {
      if ((DEFAULT_HOST_KEY_ALGORITHMS as readonly string[]).includes(a) && !preferred.includes(a as HostKeyAlgorithm)) preferred.push(a as HostKeyAlgorithm);
    }
  }
  return [...preferred, ...DEFAULT_HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
}

/** Builds the trust for one server from REMOTE_SERVER_HOST_KEY (if set) or the known_hosts file. */
export async function loadHostTrust(o: { host: string; port: number; knownHostsFile: string; pinned: string | null }): Promise<HostTrust> {
  const { host, port, knownHostsFile } = o;
  if (o.pinned) {
    const pin = parsePinnedKey(o.pinned);
    return {
      host,
      port,
      knownHostsFile,
      source: 'REMOTE_SERVER_HOST_KEY',
      algorithms: algorithmsFor(pin.type ? [pin.type] : []),
      verify(blob) {
        const key = parseKeyBlob(blob);
        const fingerprint = sha256Fingerprint(blob);
        const presented = pin.fingerprint.startsWith('MD5:') ? md5Fingerprint(blob) : fingerprint;
        const typeOk = pin.type === null || pin.type === key.type;
        if (typeOk && presented === pin.fingerprint) return { ok: true, key, fingerprint, via: 'REMOTE_SERVER_HOST_KEY' };
        return { ok: false, kind: 'changed', key, fingerprint, expected: [`${pin.type ? `${pin.type} ` : ''}${pin.fingerprint} (REMOTE_SERVER_HOST_KEY)`] };
      },
    };
  }

  let text = '';
  try {
    text = await readFile(knownHostsFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new EtlError('ssh_known_hosts_unreadable', `cannot read known_hosts file ${knownHostsFile}: ${(e as Error).message}`, {
        hint: 'set REMOTE_SERVER_KNOWN_HOSTS to a readable file, or REMOTE_SERVER_HOST_KEY to the server key fingerprint',
      });
    }
  }
  const name = knownHostsName(host, port);
  const matching = parseKnownHosts(text).filter((e) => hostMatches(e.patterns, name));
  const trusted = matching.filter((e) => e.marker === null);
  const revoked = matching.filter((e) => e.marker === 'revoked');
  return {
    host,
    port,
    knownHostsFile,
    source: `known_hosts file ${knownHostsFile}`,
    algorithms: algorithmsFor(trusted.map((e) => e.key.type)),
    verify(blob) {
      const key = parseKeyBlob(blob);
      const fingerprint = sha256Fingerprint(blob);
      const expected = trusted.map((e) => `${e.key.type} ${sha256Fingerprint(e.key.blob)} (${knownHostsFile}:${e.line})`);
      if (revoked.some((e) => e.key.blob.equals(blob))) return { ok: false, kind: 'revoked', key, fingerprint, expected };
      const hit = trusted.find((e) => e.key.blob.equals(blob));
      if (hit) return { ok: true, key, fingerprint, via: `${knownHostsFile}:${hit.line}` };
      return { ok: false, kind: trusted.length > 0 ? 'changed' : 'unknown', key, fingerprint, expected };
    },
  };
}

/** Turns a refused key into the error the user sees. */
export function hostKeyError(trust: HostTrust, verdict: Extract<HostKeyVerdict, { ok: false }>): EtlError {
  const server = `${trust.host}:${trust.port}`;
  const line = knownHostsLine(trust.host, trust.port, verdict.key);
  const context = { host: trust.host, port: trust.port };
  const presented = { keyType: verdict.key.type, fingerprint: verdict.fingerprint };
  if (verdict.kind === 'unknown') {
    return new SshHostKeyUnknownError(
      `the SSH server ${server} is not a known host: it presented a ${verdict.key.type} key with fingerprint ${verdict.fingerprint}, ` +
        `which is in neither ${trust.knownHostsFile} nor REMOTE_SERVER_HOST_KEY`,
      presented,
      {
        context,
        hint:
          `check that fingerprint with the server's administrator (on the server: ssh-keygen -lf /etc/ssh/ssh_host_${shortType(verdict.key.type)}_key.pub); ` +
          `if it matches, trust it by adding this line to ${trust.knownHostsFile}:\n  ${line}\n` +
          `or by setting REMOTE_SERVER_HOST_KEY=${verdict.fingerprint}`,
      },
    );
  }
  const heading = verdict.kind === 'revoked' ? 'HAS BEEN REVOKED' : 'HAS CHANGED';
  return new SshHostKeyChangedError(
    `WARNING: THE HOST KEY OF SSH SERVER ${server} ${heading}. Someone could be intercepting the connection ` +
      `(man-in-the-middle attack), or the server's key was replaced. It presented ${verdict.key.type} ${verdict.fingerprint}; ` +
      `trusted: ${verdict.expected.join(', ') || '(none)'} from ${trust.source}. Nothing was sent to it.`,
    presented,
    {
      context,
      hint:
        `do not continue until the server's administrator confirms the new key. If it was legitimately replaced, ` +
        (trust.source === 'REMOTE_SERVER_HOST_KEY'
          ? `set REMOTE_SERVER_HOST_KEY=${verdict.fingerprint}`
          : `remove the old entry (ssh-keygen -R '${knownHostsName(trust.host, trust.port)}' -f ${trust.knownHostsFile}) and add:\n  ${line}`),
    },
  );
}

function shortType(type: string): string {
  if (type === 'ssh-ed25519') return 'ed25519';
  if (type.startsWith('ecdsa')) return 'ecdsa';
  if (type === 'ssh-rsa') return 'rsa';
  return type;
}

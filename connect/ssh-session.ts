// One authenticated SSH connection to REMOTE_SERVER_URL, verified against a trusted host key, that
// tunnels (local TCP port → host:port as seen from the server) and runs remote commands. Everything
// it opened closes on close(), on an abort of the given signal, and when the connection drops:
// no listener outlives it.
import os from 'node:os';
import path from 'node:path';
import ssh2, { type AnyAuthMethod, type AuthenticationType, type ClientChannel } from 'ssh2';
import { ConfigError, EtlError } from '../errors/etl-error.ts';
import type { SshConfig } from './config.ts';
import { connectionStringSecrets, quotedSettingValue, redactText } from '../errors/redact.ts';
import { expandHome, planAuth, type AuthPlan } from './ssh-auth.ts';
import { openForward, type SshForward } from './ssh-forward.ts';
import { hostKeyError, loadHostTrust, type HostKeyVerdict, type HostTrust } from './ssh-host-key.ts';

export type { SshForward } from './ssh-forward.ts';

export interface SshExecResult {
  readonly code: number | null;
  readonly signal: string | null;
}

export interface SshExec {
  /** The command's stdout; its stderr is `channel.stderr`. */
  readonly channel: ClientChannel;
  /** Settles when the remote command has exited (code, or the signal that ended it). */
  readonly exit: Promise<SshExecResult>;
}

export interface SshSession {
  /** `user@host:port`, for messages (no secrets). */
  readonly target: string;
  /** The verified host key: type, SHA256 fingerprint and which trust entry matched. */
  readonly hostKey: { readonly type: string; readonly fingerprint: string; readonly via: string };
  /**
   * Listens on 127.0.0.1:<free port> and forwards each connection to remoteHost:remotePort from the
   * server. `settings`: the variables naming that far end, for the hint when it cannot be reached.
   */
  forward(remoteHost: string, remotePort: number, settings: string | null): Promise<SshForward>;
  /** Runs a command on the server (through the user's login shell, as `ssh host cmd` does). */
  exec(command: string): Promise<SshExec>;
  close(): Promise<void>;
}

export interface OpenSshSessionOptions {
  readonly ssh: SshConfig;
  readonly signal?: AbortSignal;
  /** Handshake + authentication time limit (ms). */
  readonly readyTimeoutMs?: number;
}

// What a host, host:port or ssh:// URL is made of, mistyped (a blank, a path, a second port).
const HOST_SHAPE = /^[\w.:[\]/@ -]+$/;

/** Where the server is: REMOTE_SERVER_URL may be `host`, `host:port`, `[v6]:port` or `ssh://user@host:port`. */
export function sshTarget(ssh: SshConfig): { host: string; port: number; user: string } {
  let host = (ssh.host ?? '').trim();
  let port = ssh.port;
  let user = ssh.user ?? null;
  if (!host) throw new ConfigError('REMOTE_SERVER_URL is not set: the SSH server to tunnel through', [], { hint: 'set REMOTE_SERVER_URL, REMOTE_SERVER_USER and REMOTE_SERVER_PASSWORD (or REMOTE_SERVER_KEY_FILE) in the environment or .env' });
  const secrets = connectionStringSecrets(host);
  if (secrets.length > 0) {
    // It would become the user name, and be shown as the target of every line.
    throw new ConfigError('REMOTE_SERVER_URL holds a password (user:password@host): it is not shown, and not taken from there', [], {
      hint: 'give the host alone (or ssh://user@host:port), the password in REMOTE_SERVER_PASSWORD',
    });
  }
  // A host name holds letters, digits, dots, hyphens (underscores, in some networks): not a blank, nor a `!` of a password.
  const m = /^(?:ssh:\/\/)?(?:([^@/]+)@)?(\[[^\]]+\]|[\w.-]+)(?::(\d+))?\/?$/.exec(host);
  if (!m) throw new ConfigError(`REMOTE_SERVER_URL must be a host name, host:port or ssh://user@host:port, got ${quotedSettingValue(host, HOST_SHAPE)}`, [], { context: { variable: 'REMOTE_SERVER_URL' } });
  if (m[1] && !user) user = decodeURIComponent(m[1]);
  host = m[2]!.replace(/^\[|\]$/g, '');
  if (m[3]) port = Number(m[3]);
  if (!user) throw new ConfigError('REMOTE_SERVER_USER is not set: the SSH user to log in as', [], { hint: 'set REMOTE_SERVER_USER in the environment or .env' });
  return { host, port, user };
}

/** What a login needs: where, as whom, how, and which host keys to trust. */
interface Login {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly target: string;
  readonly auth: AuthPlan;
  readonly trust: HostTrust;
  readonly secrets: readonly string[];
  readonly readyTimeoutMs: number;
}

export async function openSshSession(o: OpenSshSessionOptions): Promise<SshSession> {
  const { ssh, signal } = o;
  signal?.throwIfAborted();
  const { host, port, user } = sshTarget(ssh);
  const knownHostsFile = expandHome(ssh.knownHostsFile ?? path.join(os.homedir(), '.ssh', 'known_hosts'));
  const login: Login = {
    host,
    port,
    user,
    target: `${user}@${host}:${port}`,
    auth: await planAuth(ssh, user),
    trust: await loadHostTrust({ host, port, knownHostsFile, pinned: ssh.hostKeyFingerprint }),
    secrets: [ssh.password, ssh.passphrase].filter((s): s is string => !!s),
    readyTimeoutMs: o.readyTimeoutMs ?? 20_000,
  };
  const client = new ssh2.Client();
  const verdict = await connect(client, login, signal);
  const session = new OpenSession(client, login.target, verdict, signal);
  if (signal?.aborted) {
    await session.close();
    signal.throwIfAborted();
  }
  return session;
}

/** Connects and logs in; settles with the accepted host key, or rejects with what went wrong. */
function connect(client: ssh2.Client, login: Login, signal: AbortSignal | undefined): Promise<HostKeyVerdict | null> {
  let verdict: HostKeyVerdict | null = null;
  return new Promise<HostKeyVerdict | null>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      client.destroy();
      reject(err);
    };
    const abortDuringConnect = (): void => fail(signal?.reason ?? new Error('aborted'));
    signal?.addEventListener('abort', abortDuringConnect, { once: true });
    client.once('ready', () => {
      signal?.removeEventListener('abort', abortDuringConnect);
      if (settled) return;
      settled = true;
      resolve(verdict);
    });
    client.once('error', (err: Error & { level?: string }) => {
      signal?.removeEventListener('abort', abortDuringConnect);
      fail(verdict && !verdict.ok ? hostKeyError(login.trust, verdict) : connectError(err, login));
    });
    client.once('close', () => fail(new EtlError('ssh_closed', `the SSH server ${login.target} closed the connection during login`)));
    try {
      client.connect(connectConfig(login, (v) => (verdict = v)));
    } catch (err) {
      fail(new EtlError('ssh_failed', `SSH connection to ${login.target} failed: ${redactText((err as Error).message, login.secrets)}`, { cause: err }));
    }
  });
}

function connectConfig(login: Login, onVerdict: (v: HostKeyVerdict) => void): ssh2.ConnectConfig {
  const tried = new Set<AuthenticationType>();
  return {
    host: login.host,
    port: login.port,
    username: login.user,
    readyTimeout: login.readyTimeoutMs,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    algorithms: { serverHostKey: login.trust.algorithms },
    hostVerifier: (key: Buffer) => {
      const verdict = login.trust.verify(key);
      onVerdict(verdict);
      return verdict.ok;
    },
    authHandler: (authsLeft, _partial, next) => {
      // authsLeft is null on the first call; afterwards only what the server still accepts.
      // An agent signs with public keys: on the wire it is the `publickey` method.
      const offered = (m: AnyAuthMethod): AuthenticationType => (m.type === 'agent' ? 'publickey' : m.type);
      const method = login.auth.methods.find((m) => !tried.has(m.type) && (authsLeft === null || authsLeft.includes(offered(m))));
      if (!method) return next(false as unknown as AuthenticationType);
      tried.add(method.type);
      next(method);
    },
  };
}

/** ssh2 classifies its failures by `level`: the login, the handshake's time limit, the socket. */
function connectError(err: Error & { level?: string }, login: Login): EtlError {
  const reason = redactText(err.message, login.secrets);
  if (err.level === 'client-authentication') {
    return new EtlError('ssh_auth_failed', `SSH authentication failed for ${login.target} (tried: ${login.auth.describe.join(', ')}; the server refused them all)`, {
      hint: "check REMOTE_SERVER_USER and REMOTE_SERVER_PASSWORD, or REMOTE_SERVER_KEY_FILE (its public key must be in the server's authorized_keys)",
    });
  }
  if (err.level === 'client-timeout') {
    return new EtlError('ssh_timeout', `the SSH server ${login.target} did not complete the handshake in time (${reason})`, { hint: 'check REMOTE_SERVER_URL and REMOTE_SERVER_PORT, and firewalls' });
  }
  if (err.level === 'client-socket') {
    return new EtlError('ssh_unreachable', `cannot reach the SSH server ${login.host}:${login.port}: ${reason}`, { hint: 'check REMOTE_SERVER_URL and REMOTE_SERVER_PORT, and that sshd runs there' });
  }
  return new EtlError('ssh_failed', `SSH connection to ${login.target} failed: ${reason}`);
}

/** A logged-in connection: its forwards and commands, all closed with it. */
class OpenSession implements SshSession {
  readonly hostKey: SshSession['hostKey'];
  readonly #client: ssh2.Client;
  readonly #signal: AbortSignal | undefined;
  readonly #forwards = new Set<SshForward>();
  readonly #clientClosed: Promise<void>;
  #closing: Promise<void> | null = null;
  readonly #onAbort = (): void => {
    void this.close();
  };

  constructor(
    client: ssh2.Client,
    readonly target: string,
    accepted: HostKeyVerdict | null,
    signal: AbortSignal | undefined,
  ) {
    this.#client = client;
    this.#signal = signal;
    this.hostKey = accepted?.ok ? { type: accepted.key.type, fingerprint: accepted.fingerprint, via: accepted.via } : { type: '?', fingerprint: '?', via: '?' };
    this.#clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // After login: a dropped connection closes every tunnel, an abort closes everything.
    client.on('error', () => undefined);
    client.once('close', () => {
      void this.close();
    });
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  async forward(remoteHost: string, remotePort: number, settings: string | null): Promise<SshForward> {
    this.#refuseWhenClosed();
    const forward = await openForward(this.#client, this.target, remoteHost, remotePort, settings, (f) => this.#forwards.delete(f));
    this.#forwards.add(forward);
    return forward;
  }

  exec(command: string): Promise<SshExec> {
    try {
      this.#refuseWhenClosed();
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#client.exec(command, (err, channel) => {
        if (err) return reject(new EtlError('ssh_exec_failed', `the SSH server ${this.target} refused to run a command: ${err.message}`, { cause: err }));
        resolve({ channel, exit: exitOf(channel) });
      });
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#signal?.removeEventListener('abort', this.#onAbort);
      await Promise.allSettled([...this.#forwards].map((f) => f.close()));
      this.#client.end();
      // end() waits for the server; a dead peer must not keep us here.
      const timer = setTimeout(() => this.#client.destroy(), 2_000);
      await this.#clientClosed;
      clearTimeout(timer);
    })();
    return this.#closing;
  }

  #refuseWhenClosed(): void {
    if (this.#closing) throw new EtlError('ssh_closed', `the SSH connection to ${this.target} is closed`);
  }
}

/** Settles when the remote command has exited (code, or the signal that ended it). */
function exitOf(channel: ClientChannel): Promise<SshExecResult> {
  return new Promise<SshExecResult>((resolve) => {
    let result: SshExecResult = { code: null, signal: null };
    channel.once('exit', (code: number | null, sig?: string) => {
      result = { code: typeof code === 'number' ? code : null, signal: sig ?? null };
    });
    channel.once('close', () => resolve(result));
  });
}

// One authenticated SSH connection to REMOTE_SERVER_URL, verified against a trusted host key, that
// tunnels (local TCP port → host:port as seen from the server) and runs remote commands. Everything
// it opened closes on close(), on an abort of the given signal, and when the connection drops:
// no listener outlives it.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import ssh2, { type AnyAuthMethod, type AuthenticationType, type ClientChannel } from 'ssh2';
import { ConfigError, EtlError } from '../model/errors.ts';
import type { SshConfig } from './config.ts';
import { redactText } from './redact.ts';
import { hostKeyError, loadHostTrust, type HostKeyVerdict } from './ssh-host-key.ts';

const { Client, utils } = ssh2;

export interface SshForward {
  readonly localPort: number;
  readonly remoteHost: string;
  readonly remotePort: number;
  close(): Promise<void>;
}

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
  /** Listens on 127.0.0.1:<free port> and forwards each connection to remoteHost:remotePort from the server. */
  forward(remoteHost: string, remotePort: number): Promise<SshForward>;
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

/** Where the server is: REMOTE_SERVER_URL may be `host`, `host:port`, `[v6]:port` or `ssh://user@host:port`. */
export function sshTarget(ssh: SshConfig): { host: string; port: number; user: string } {
  let host = (ssh.host ?? '').trim();
  let port = ssh.port;
  let user = ssh.user ?? null;
  if (!host) throw new ConfigError('REMOTE_SERVER_URL is not set: the SSH server to tunnel through', [], { hint: 'set REMOTE_SERVER_URL, REMOTE_SERVER_USER and REMOTE_SERVER_PASSWORD (or REMOTE_SERVER_KEY_FILE) in the environment or .env' });
  const m = /^(?:ssh:\/\/)?(?:([^@/]+)@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(host);
  if (!m) throw new ConfigError(`REMOTE_SERVER_URL "${host}" is not a host name, host:port or ssh://user@host:port`);
  if (m[1] && !user) user = decodeURIComponent(m[1]);
  host = m[2]!.replace(/^\[|\]$/g, '');
  if (m[3]) port = Number(m[3]);
  if (!user) throw new ConfigError('REMOTE_SERVER_USER is not set: the SSH user to log in as', [], { hint: 'set REMOTE_SERVER_USER in the environment or .env' });
  return { host, port, user };
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

interface AuthPlan {
  readonly methods: AnyAuthMethod[];
  readonly describe: string[];
}

async function planAuth(ssh: SshConfig, user: string): Promise<AuthPlan> {
  const methods: AnyAuthMethod[] = [];
  const describe: string[] = [];
  if (ssh.privateKeyFile) {
    const file = expandHome(ssh.privateKeyFile);
    let key: Buffer;
    try {
      key = await readFile(file);
    } catch (e) {
      throw new ConfigError(`cannot read the SSH private key REMOTE_SERVER_KEY_FILE=${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    // Parsed here so a missing or wrong passphrase is named as such, not as a failed login.
    const parsed = utils.parseKey(key, ssh.passphrase ?? undefined);
    if (parsed instanceof Error) {
      const encrypted = /encrypted|passphrase/i.test(parsed.message);
      throw new ConfigError(
        encrypted
          ? `the SSH private key ${file} is encrypted and ${ssh.passphrase ? 'REMOTE_SERVER_KEY_PASSPHRASE does not decrypt it' : 'REMOTE_SERVER_KEY_PASSPHRASE is not set'}`
          : `the SSH private key ${file} cannot be used: ${redactText(parsed.message, ssh.passphrase ? [ssh.passphrase] : [])}`,
      );
    }
    methods.push({ type: 'publickey', username: user, key, passphrase: ssh.passphrase ?? undefined });
    describe.push(`public key ${file}`);
  }
  if (ssh.agentSocket) {
    methods.push({ type: 'agent', username: user, agent: ssh.agentSocket });
    describe.push('ssh-agent (SSH_AUTH_SOCK)');
  }
  if (ssh.password !== null) {
    const password = ssh.password;
    methods.push({ type: 'password', username: user, password });
    // Servers that delegate passwords to PAM often offer only keyboard-interactive.
    methods.push({
      type: 'keyboard-interactive',
      username: user,
      prompt: (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => password)),
    });
    describe.push('password');
  }
  if (methods.length === 0) {
    throw new ConfigError('no SSH credentials configured: set REMOTE_SERVER_PASSWORD, REMOTE_SERVER_KEY_FILE, or run an ssh-agent (SSH_AUTH_SOCK)');
  }
  return { methods, describe };
}

export async function openSshSession(o: OpenSshSessionOptions): Promise<SshSession> {
  const { ssh, signal } = o;
  signal?.throwIfAborted();
  const { host, port, user } = sshTarget(ssh);
  const target = `${user}@${host}:${port}`;
  const auth = await planAuth(ssh, user);
  const knownHostsFile = expandHome(ssh.knownHostsFile ?? path.join(os.homedir(), '.ssh', 'known_hosts'));
  const trust = await loadHostTrust({ host, port, knownHostsFile, pinned: ssh.hostKeyFingerprint });
  const secrets = [ssh.password, ssh.passphrase].filter((s): s is string => !!s);

  const client = new Client();
  let verdict: HostKeyVerdict | null = null;
  const tried = new Set<AuthenticationType>();
  const forwards = new Set<SshForward>();
  let closed = false;
  let closing: Promise<void> | null = null;
  const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));

  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      signal?.removeEventListener('abort', onAbort);
      await Promise.allSettled([...forwards].map((f) => f.close()));
      client.end();
      // end() waits for the server; a dead peer must not keep us here.
      const timer = setTimeout(() => client.destroy(), 2_000);
      await clientClosed;
      clearTimeout(timer);
    })();
    return closing;
  };
  const onAbort = (): void => {
    void close();
  };

  await new Promise<void>((resolve, reject) => {
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
      resolve();
    });
    client.once('error', (err: Error & { level?: string }) => {
      signal?.removeEventListener('abort', abortDuringConnect);
      fail(connectError(err));
    });
    client.once('close', () => fail(new EtlError('ssh_closed', `the SSH server ${target} closed the connection during login`)));

    const connectError = (err: Error & { level?: string }): EtlError => {
      if (verdict && !verdict.ok) return hostKeyError(trust, verdict);
      const reason = redactText(err.message, secrets);
      if (err.level === 'client-authentication') {
        return new EtlError('ssh_auth_failed', `SSH authentication failed for ${target} (tried: ${auth.describe.join(', ')}; the server refused them all)`, {
          hint: 'check REMOTE_SERVER_USER and REMOTE_SERVER_PASSWORD, or REMOTE_SERVER_KEY_FILE (its public key must be in the server\'s authorized_keys)',
        });
      }
      if (err.level === 'client-timeout') {
        return new EtlError('ssh_timeout', `the SSH server ${target} did not complete the handshake in time (${reason})`, { hint: 'check REMOTE_SERVER_URL and REMOTE_SERVER_PORT, and firewalls' });
      }
      if (err.level === 'client-socket') {
        return new EtlError('ssh_unreachable', `cannot reach the SSH server ${host}:${port}: ${reason}`, { hint: 'check REMOTE_SERVER_URL and REMOTE_SERVER_PORT, and that sshd runs there' });
      }
      return new EtlError('ssh_failed', `SSH connection to ${target} failed: ${reason}`);
    };

    try {
      client.connect({
        host,
        port,
        username: user,
        readyTimeout: o.readyTimeoutMs ?? 20_000,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        algorithms: { serverHostKey: trust.algorithms },
        hostVerifier: (key: Buffer) => {
          verdict = trust.verify(key);
          return verdict.ok;
        },
        authHandler: (authsLeft, _partial, next) => {
          // authsLeft is null on the first call; afterwards only what the server still accepts.
          // An agent signs with public keys: on the wire it is the `publickey` method.
          const offered = (m: AnyAuthMethod): AuthenticationType => (m.type === 'agent' ? 'publickey' : m.type);
          const method = auth.methods.find((m) => !tried.has(m.type) && (authsLeft === null || authsLeft.includes(offered(m))));
          if (!method) return next(false as unknown as AuthenticationType);
          tried.add(method.type);
          next(method);
        },
      });
    } catch (err) {
      fail(new EtlError('ssh_failed', `SSH connection to ${target} failed: ${redactText((err as Error).message, secrets)}`, { cause: err }));
    }
  });

  // After login: a dropped connection closes every tunnel, an abort closes everything.
  client.on('error', () => undefined);
  client.once('close', () => {
    void close();
  });
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) {
    await close();
    signal.throwIfAborted();
  }
  const accepted = verdict as HostKeyVerdict | null;
  const hostKey = accepted?.ok ? { type: accepted.key.type, fingerprint: accepted.fingerprint, via: accepted.via } : { type: '?', fingerprint: '?', via: '?' };

  const openChannel = (remoteHost: string, remotePort: number, srcPort: number): Promise<ClientChannel> =>
    new Promise((resolve, reject) => {
      client.forwardOut('127.0.0.1', srcPort, remoteHost, remotePort, (err, channel) => (err ? reject(err) : resolve(channel)));
    });

  const forward = async (remoteHost: string, remotePort: number): Promise<SshForward> => {
    if (closed) throw new EtlError('ssh_closed', `the SSH connection to ${target} is closed`);
    // One probe first, so "nothing listens there" is reported now, naming the far end, rather
    // than as a vague driver error on the first query.
    try {
      const probe = await openChannel(remoteHost, remotePort, 0);
      probe.destroy();
    } catch (err) {
      throw new EtlError('ssh_forward_failed', `the SSH server ${target} cannot connect to ${remoteHost}:${remotePort}: ${(err as Error).message}`, {
        hint: 'check that the database runs on the server and listens on that address and port (REMOTE_MONGODB_URL, REMOTE_POSTGRES_PORT), and that the server allows TCP forwarding (AllowTcpForwarding)',
        cause: err,
      });
    }
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      socket.pause();
      openChannel(remoteHost, remotePort, socket.remotePort ?? 0).then(
        (channel) => {
          if (socket.destroyed) {
            channel.destroy();
            return;
          }
          // Both directions at once; each keeps its own backpressure. Either failing ends both.
          const done = (): void => {
            socket.destroy();
            channel.destroy();
          };
          void Promise.allSettled([pipeline(socket, channel), pipeline(channel, socket)]).then(done);
        },
        () => socket.destroy(),
      );
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    const localPort = typeof address === 'object' && address ? address.port : 0;
    let stopping: Promise<void> | null = null;
    const fwd: SshForward = {
      localPort,
      remoteHost,
      remotePort,
      close: () => {
        stopping ??= new Promise<void>((resolve) => {
          forwards.delete(fwd);
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        });
        return stopping;
      },
    };
    forwards.add(fwd);
    return fwd;
  };

  const exec = (command: string): Promise<SshExec> => {
    if (closed) return Promise.reject(new EtlError('ssh_closed', `the SSH connection to ${target} is closed`));
    return new Promise((resolve, reject) => {
      client.exec(command, (err, channel) => {
        if (err) return reject(new EtlError('ssh_exec_failed', `the SSH server ${target} refused to run a command: ${err.message}`, { cause: err }));
        const exit = new Promise<SshExecResult>((res) => {
          let result: SshExecResult = { code: null, signal: null };
          channel.once('exit', (code: number | null, sig?: string) => {
            result = { code: typeof code === 'number' ? code : null, signal: sig ?? null };
          });
          channel.once('close', () => res(result));
        });
        resolve({ channel, exit });
      });
    });
  };

  return { target, hostKey, forward, exec, close };
}

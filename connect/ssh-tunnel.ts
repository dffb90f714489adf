// A single SSH tunnel: 127.0.0.1:<localPort> on this machine reaches remoteHost:remotePort as the
// SSH server sees it (`ssh -L`). For several tunnels over one connection, or remote commands, use
// openSshSession() from ssh-session.ts.
import type { SshConfig } from './config.ts';
import { openSshSession, type SshSession } from './ssh-session.ts';

export interface OpenTunnelOptions {
  readonly ssh: SshConfig;
  /** As seen from the SSH server (usually `localhost`). */
  readonly remoteHost: string;
  readonly remotePort: number;
  /** The variables naming the far end, for the hint when it cannot be reached (default: none). */
  readonly settings?: string;
  /** Aborting it closes the tunnel and the SSH connection. */
  readonly signal?: AbortSignal;
}

export interface Tunnel {
  readonly localPort: number;
  /** `user@host:port` of the SSH server. */
  readonly via: string;
  readonly session: SshSession;
  close(): Promise<void>;
}

export async function openTunnel(o: OpenTunnelOptions): Promise<Tunnel> {
  const session = await openSshSession({ ssh: o.ssh, signal: o.signal });
  try {
    const fwd = await session.forward(o.remoteHost, o.remotePort, o.settings ?? null);
    return { localPort: fwd.localPort, via: session.target, session, close: () => session.close() };
  } catch (err) {
    await session.close();
    throw err;
  }
}

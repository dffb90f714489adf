// A local TCP port that forwards each connection through the SSH connection to host:port as seen
// from the server (what `ssh -L` does). Each accepted socket gets its own channel; both directions
// are piped with their own backpressure, and either end failing closes both.
import net from 'node:net';
import { pipeline } from 'node:stream/promises';
import type ssh2 from 'ssh2';
import type { ClientChannel } from 'ssh2';
import { EtlError } from '../errors/etl-error.ts';

export interface SshForward {
  readonly localPort: number;
  readonly remoteHost: string;
  readonly remotePort: number;
  close(): Promise<void>;
}

function openChannel(client: ssh2.Client, remoteHost: string, remotePort: number, srcPort: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', srcPort, remoteHost, remotePort, (err, channel) => (err ? reject(err) : resolve(channel)));
  });
}

/**
 * One probe first, so "nothing listens there" is reported now, naming the far end, rather than as
 * a vague driver error on the first query. `settings`: the variables that named the far end (only
 * those of this tunnel: the user has one of them to fix), or null when no setting did.
 */
async function probe(client: ssh2.Client, target: string, remoteHost: string, remotePort: number, settings: string | null): Promise<void> {
  try {
    (await openChannel(client, remoteHost, remotePort, 0)).destroy();
  } catch (err) {
    const where = settings ? ` (${settings})` : '';
    throw new EtlError('ssh_forward_failed', `the SSH server ${target} cannot connect to ${remoteHost}:${remotePort}: ${(err as Error).message}`, {
      hint: `check that the database runs on the server and listens on that address and port${where}, and that the server allows TCP forwarding (AllowTcpForwarding)`,
      cause: err,
    });
  }
}

function relay(client: ssh2.Client, remoteHost: string, remotePort: number, socket: net.Socket): void {
  socket.on('error', () => undefined);
  socket.pause();
  openChannel(client, remoteHost, remotePort, socket.remotePort ?? 0).then(
    (channel) => {
      if (socket.destroyed) {
        channel.destroy();
        return;
      }
      const done = (): void => {
        socket.destroy();
        channel.destroy();
      };
      void Promise.allSettled([pipeline(socket, channel), pipeline(channel, socket)]).then(done);
    },
    () => socket.destroy(),
  );
}

function listenLocally(server: net.Server): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

/** Listens on 127.0.0.1:<free port>; `onClose` runs when the forward is closed. `settings`: as probe()'s. */
export async function openForward(client: ssh2.Client, target: string, remoteHost: string, remotePort: number, settings: string | null, onClose: (f: SshForward) => void): Promise<SshForward> {
  await probe(client, target, remoteHost, remotePort, settings);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    relay(client, remoteHost, remotePort, socket);
  });
  server.on('error', () => undefined);
  const localPort = await listenLocally(server);
  let stopping: Promise<void> | null = null;
  const forward: SshForward = {
    localPort,
    remoteHost,
    remotePort,
    close: () => {
      stopping ??= new Promise<void>((resolve) => {
        onClose(forward);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return stopping;
    },
  };
  return forward;
}

// A real OpenSSH server for the tunnel tests: /usr/sbin/sshd (installed from Debian's
// openssh-server when missing) on a free loopback port, with a fresh host key, a fresh user key and a
// throwaway local user with a known password, all in a temp dir. stop() ends sshd and deletes the user.
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { spawnOwned, type OwnedChild } from '../../dev/servers/owned-child.ts';
import { freePort } from '../../dev/servers/free-port.ts';
import { ensureSystem, SSHD as SSHD_PACKAGES } from '../../dev/servers/system-packages.ts';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** The throwaway user: both the key and the password log in as it. */
  readonly user: string;
  readonly password: string;
  /** Private key file whose public half is in the server's authorized_keys. */
  readonly userKeyFile: string;
  /** `ssh-ed25519 AAAA…` of the server's host key. */
  readonly hostPublicKey: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  readonly hostFingerprint: string;
  /** A known_hosts file trusting this server (`[127.0.0.1]:port ssh-ed25519 …`). */
  readonly knownHostsFile: string;
  /** Makes a new ed25519 key pair in the temp dir (encrypted when a passphrase is given). */
  newKeyPair(name: string, passphrase?: string): Promise<{ privateFile: string; publicKey: string }>;
  /** Adds a public key line to the server's authorized_keys. */
  authorize(publicKey: string): Promise<void>;
  stop(): Promise<void>;
}

/** Installs openssh-server if sshd is missing (the tests run as root in CI). */
export async function ensureSshd(): Promise<void> {
  await ensureSystem(SSHD_PACKAGES);
}

export async function startSshd(): Promise<Sshd> {
  if (process.getuid?.() !== 0) throw new Error('the SSH tests need root: they run sshd and create a throwaway local user');
  await ensureSshd();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-sshd-'));
  await chmod(dir, 0o755);
  // sshd refuses to start without its privilege separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const user = `etlssh${process.pid}`.slice(0, 30);
  const password = randomBytes(12).toString('hex');
  let child: OwnedChild | undefined;
  let userCreated = false;
  const stop = async (): Promise<void> => {
    await child?.stop('SIGTERM', 5_000);
    if (userCreated) {
      // -f: a session of the user may still be closing, and plain userdel refuses then.
      await run('userdel', ['-f', user]).catch(() => undefined);
      userCreated = false;
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await run('useradd', ['--no-create-home', '--home-dir', dir, '--shell', '/bin/sh', user]).catch(async (e: Error) => {
      if (!/already exists/.test(e.message)) throw e;
    });
    userCreated = true;
    await run('sh', ['-c', `echo '${user}:${password}' | chpasswd`]);

    const keygen = async (file: string, comment: string, passphrase = '') => {
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', comment, '-f', file]);
      return (await readFile(`${file}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    };
    const hostKeyFile = path.join(dir, 'host_ed25519');
    const hostPublicKey = await keygen(hostKeyFile, 'etl-test-host');
    const userKeyFile = path.join(dir, 'user_ed25519');
    const userPublicKey = await keygen(userKeyFile, 'etl-test-user');
    await writeFile(path.join(dir, 'authorized_keys'), `${userPublicKey}\n`, { mode: 0o644 });
    const fp = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKeyFile}.pub`])).stdout.split(/\s+/)[1]!;

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const cfg = path.join(dir, 'sshd_config');
      await writeFile(
        cfg,
        [
          'ListenAddress 127.0.0.1',
          `Port ${port}`,
          `HostKey ${hostKeyFile}`,
          `PidFile ${path.join(dir, 'sshd.pid')}`,
          `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
          'PubkeyAuthentication yes',
          'PasswordAuthentication yes',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'AllowTcpForwarding yes',
          'PermitRootLogin no',
          `AllowUsers ${user}`,
          'LogLevel VERBOSE',
          '',
        ].join('\n'),
      );
      const echo = process.env.SSHD_LOG === '1' ? (text: string) => process.stderr.write(`[sshd] ${text}`) : undefined;
      const server = spawnOwned(SSHD, ['-D', '-e', '-f', cfg], {}, { signal: 'SIGKILL', dir: null }, echo);
      child = server;
      if (await waitForBanner(port, server.process)) {
        const knownHostsFile = path.join(dir, 'known_hosts');
        await writeFile(knownHostsFile, `[127.0.0.1]:${port} ${hostPublicKey}\n`);
        return {
          host: '127.0.0.1',
          port,
          dir,
          user,
          password,
          userKeyFile,
          hostPublicKey,
          hostFingerprint: fp,
          knownHostsFile,
          newKeyPair: async (name, passphrase) => {
            const privateFile = path.join(dir, name);
            return { privateFile, publicKey: await keygen(privateFile, name, passphrase) };
          },
          authorize: (publicKey) => appendFile(path.join(dir, 'authorized_keys'), `${publicKey}\n`),
          stop,
        };
      }
      await server.stop('SIGKILL', 1_000);
      if (attempt >= 3) throw new Error(`sshd did not start:\n${server.stderr()}`);
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** Resolves true once the port answers with an SSH banner, false if sshd exited first. */
async function waitForBanner(port: number, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const banner = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      let got = '';
      socket.setTimeout(1_000, () => socket.destroy());
      socket.on('data', (b: Buffer) => {
        got += b.toString('latin1');
        socket.destroy();
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(got));
    });
    if (banner.startsWith('SSH-2.0-')) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

// How we log in to the SSH server: the methods to offer, in order (private key, ssh-agent,
// password), each read and checked before connecting so a missing or wrong passphrase is named as
// such rather than reported as a refused login.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import ssh2, { type AnyAuthMethod } from 'ssh2';
import { ConfigError } from '../errors/etl-error.ts';
import type { SshConfig } from './config.ts';
import { PATH_SHAPE, quotedSettingValue, redactText } from '../errors/redact.ts';

export interface AuthPlan {
  readonly methods: AnyAuthMethod[];
  /** What is offered, for the message of a refused login. */
  readonly describe: string[];
}

export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

export async function planAuth(ssh: SshConfig, user: string): Promise<AuthPlan> {
  const methods: AnyAuthMethod[] = [];
  const describe: string[] = [];
  if (ssh.privateKeyFile) {
    const file = expandHome(ssh.privateKeyFile);
    methods.push({ type: 'publickey', username: user, key: await readPrivateKey(file, ssh.passphrase), passphrase: ssh.passphrase ?? undefined });
    describe.push(`public key ${file}`);
  }
  // A stale SSH_AUTH_SOCK (the agent of a closed session, common under tmux or sudo) makes ssh2 fail
  // the whole login: an agent that does not answer is left out, as OpenSSH does.
  const agentAnswering = ssh.agentSocket ? await agentAnswers(ssh.agentSocket) : false;
  if (ssh.agentSocket && agentAnswering) {
    methods.push({ type: 'agent', username: user, agent: ssh.agentSocket });
    describe.push('ssh-agent (SSH_AUTH_SOCK)');
  }
  if (ssh.password !== null) {
    methods.push(...passwordMethods(user, ssh.password));
    describe.push('password');
  }
  if (methods.length === 0) {
    const stale = ssh.agentSocket && !agentAnswering ? ` (SSH_AUTH_SOCK=${ssh.agentSocket} is set, but no ssh-agent answers there)` : '';
    throw new ConfigError(`no SSH credentials configured: set REMOTE_SERVER_PASSWORD, REMOTE_SERVER_KEY_FILE, or run an ssh-agent (SSH_AUTH_SOCK)${stale}`);
  }
  return { methods, describe };
}

/** Whether something accepts connections on the agent's socket (within 2 s). */
function agentAnswers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(socket);
    const done = (answers: boolean): void => {
      conn.destroy();
      resolve(answers);
    };
    conn.setTimeout(2_000, () => done(false));
    conn.once('connect', () => done(true));
    conn.once('error', () => done(false));
  });
}

function passwordMethods(user: string, password: string): AnyAuthMethod[] {
  return [
    { type: 'password', username: user, password },
    // Servers that delegate passwords to PAM often offer only keyboard-interactive.
    { type: 'keyboard-interactive', username: user, prompt: (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => password)) },
  ];
}

/** The key file's bytes, once ssh2 has shown it can use them with the passphrase given. */
async function readPrivateKey(file: string, passphrase: string | null): Promise<Buffer> {
  let key: Buffer;
  try {
    key = await readFile(file);
  } catch (e) {
    throw new ConfigError(`cannot read the SSH private key REMOTE_SERVER_KEY_FILE names: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (got ${quotedSettingValue(file, PATH_SHAPE)})`);
  }
  const parsed = ssh2.utils.parseKey(key, passphrase ?? undefined);
  if (!(parsed instanceof Error)) return key;
  if (isEncryptedKey(key)) {
    throw new ConfigError(`the SSH private key ${file} is encrypted and ${passphrase ? 'REMOTE_SERVER_KEY_PASSPHRASE does not decrypt it' : 'REMOTE_SERVER_KEY_PASSPHRASE is not set'}`);
  }
  throw new ConfigError(`the SSH private key ${file} cannot be used: ${redactText(parsed.message, passphrase ? [passphrase] : [])}`);
}

const OPENSSH_MAGIC = 'openssh-key-v1\0';

/**
 * Whether a private key file is encrypted, read from the file's own header (never from the text of
 * ssh2's error): OpenSSH's cipher name, PEM's Proc-Type, PKCS#8's ENCRYPTED label, PuTTY's Encryption.
 */
function isEncryptedKey(key: Buffer): boolean {
  const text = key.toString('latin1');
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text) || /^Proc-Type:\s*4,\s*ENCRYPTED/m.test(text)) return true;
  const ppk = /^Encryption:\s*(\S+)/m.exec(text);
  if (ppk) return ppk[1] !== 'none';
  const body = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (!body) return false;
  const blob = Buffer.from(body[1]!.replace(/\s+/g, ''), 'base64');
  if (blob.toString('latin1', 0, OPENSSH_MAGIC.length) !== OPENSSH_MAGIC || blob.length < OPENSSH_MAGIC.length + 4) return false;
  const length = blob.readUInt32BE(OPENSSH_MAGIC.length);
  const cipher = blob.toString('latin1', OPENSSH_MAGIC.length + 4, OPENSSH_MAGIC.length + 4 + length);
  return cipher !== 'none';
}

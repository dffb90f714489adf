// `etl refresh mongo`: runs mongodump ON the remote server over SSH and streams its gzipped archive
// into <out>/<timestamp>-<db>.archive.gz (written as .partial, renamed only when mongodump exited 0
// and the bytes are a gzipped mongodump archive). `etl extract --source <file>` reads it directly;
// with `restore`, the local mongorestore loads it into the local MongoDB.
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { EtlConfig } from '../connect/config.ts';
import { describeMongo } from '../connect/config.ts';
import { connectionStringSecrets, redactText } from '../errors/redact.ts';
import { openSshSession, type SshExecResult, type SshSession } from '../connect/ssh-session.ts';
import type { ClientChannel } from 'ssh2';
import { ConfigError, EtlError, SourceError } from '../errors/etl-error.ts';
import { AtomicFileSink } from '../staging/atomic-file.ts';
import { ByteMeter, collectTail, type ByteProgress } from './byte-meter.ts';
import { dumpFilePath, lastLines } from './dump-file.ts';
import { findOnPath, runChild } from './local-tools.ts';
import { shellQuote } from './shell-quote.ts';

type Env = Readonly<Record<string, string | undefined>>;

export type MongoRefreshProgress =
  | ({ readonly phase: 'connect' } & Partial<ByteProgress>)
  | ({ readonly phase: 'download' } & ByteProgress)
  | ({ readonly phase: 'restore' } & Partial<ByteProgress>);

export interface MongoRefreshOptions {
  readonly config: EtlConfig;
  /** Folder for the archive (default <staging>/dumps). */
  readonly outDir?: string;
  /** Also restore into the local MongoDB (config.mongo) with the local mongorestore. */
  readonly restore?: boolean;
  /** Environment of local child processes (PATH). */
  readonly env: Env;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: MongoRefreshProgress) => void;
  readonly now?: Date;
}

export interface MongoRefreshReport {
  readonly kind: 'mongo';
  readonly server: string;
  readonly hostKeyFingerprint: string;
  readonly database: string;
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly seconds: number;
  readonly bytesPerSecond: number;
  readonly restored: { readonly into: string; readonly database: string } | null;
}

const ARCHIVE_MAGIC = Buffer.from([0x6d, 0xe2, 0x99, 0x81]); // 0x8199e26d, little-endian

/**
 * The URI mongodump gets. mongodump refuses a --db that differs from the URI's database; that path
 * is then only where the credentials live, so it moves to authSource.
 */
export function mongodumpUri(url: string, database: string): string {
  const m = /^(mongodb(?:\+srv)?:\/\/)(?:([^@/]*)@)?([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/.exec(url);
  if (!m) return url;
  const [, scheme, auth, hosts, pathDb, query] = m;
  const urlDb = pathDb ? decodeURIComponent(pathDb) : '';
  if (!urlDb || urlDb === database) return url;
  const params = new URLSearchParams(query ?? '');
  if (auth && !params.has('authSource')) params.set('authSource', urlDb);
  const q = params.toString();
  return `${scheme}${auth ? `${auth}@` : ''}${hosts}/${q ? `?${q}` : ''}`;
}

/**
 * The URI without its password, and the password (decoded). A command line is public on the server
 * (`ps`, /proc/<pid>/cmdline, process accounting): mongodump gets the password on its stdin instead,
 * where it reads it itself when the URI names a user but no password (mongo-tools' password prompt,
 * up to the first newline).
 */
export function withoutPassword(uri: string, variable = 'REMOTE_MONGODB_URL'): { uri: string; password: string | null } {
  const m = /^(mongodb(?:\+srv)?:\/\/)([^@/]*)@(.*)$/.exec(uri);
  const colon = m ? m[2]!.indexOf(':') : -1;
  if (!m || colon < 0) {
    refuseSecretsLeftIn(uri, variable);
    return { uri, password: null };
  }
  const encoded = m[2]!.slice(colon + 1);
  let password: string;
  try {
    password = decodeURIComponent(encoded);
  } catch {
    password = encoded;
  }
  // mongodump's prompt ends the password at these bytes, drops NUL and takes backspaces as edits.
  if (/[\n\r\x00\x03\x04\x08\x7f]/.test(password)) {
    throw new ConfigError(`the password in ${variable} holds a control character (newline, backspace…) that mongodump and mongorestore cannot read from their prompt`, [], {
      context: { variable },
    });
  }
  const result = { uri: `${m[1]}${m[2]!.slice(0, colon)}@${m[3]}`, password };
  refuseSecretsLeftIn(result.uri, variable);
  return result;
}

/**
 * A URI that would still carry a secret on the command line: a password holding an unencoded `@` or
 * `/` (where it ends is then anyone's guess, so it cannot be taken off whole), or a secret option
 * (tlsCertificateKeyFilePassword, an AWS session token), which the tools read nowhere but there.
 */
function refuseSecretsLeftIn(uri: string, variable: string): void {
  const authority = uri.replace(/^mongodb(?:\+srv)?:\/\//i, '').split(/[/?#]/, 1)[0]!;
  if (connectionStringSecrets(uri).length === 0 && (authority.match(/@/g) ?? []).length <= 1) return;
  throw new ConfigError(`${variable} would leave a secret on mongodump's or mongorestore's command line, which every user of the machine can read (ps): not run`, [], {
    context: { variable },
    hint: 'percent-encode the special characters of the user name and the password (@ as %40, / as %2F, : as %3A); a key file or token the tools can only read from the command line has no safe place there: use an unencrypted key file or a password',
  });
}

export function mongodumpCommand(command: string, database: string, uri: string): string {
  return `${command} --archive --gzip --db=${shellQuote(database)} --uri=${shellQuote(uri)}`;
}

export async function runMongoRefresh(o: MongoRefreshOptions): Promise<MongoRefreshReport> {
  const { config, signal } = o;
  const database = config.remote.mongo.database;
  // A URI that would leave a secret on the server's command line is refused before anything connects.
  withoutPassword(mongodumpUri(config.remote.mongo.url, database));
  const mongorestore = await requireMongorestore(o);
  const file = await dumpFilePath(config, o.outDir, o.now, database, '.archive.gz');
  o.onProgress?.({ phase: 'connect' });
  const session = await openSshSession({ ssh: config.remote.ssh, signal });
  try {
    const started = Date.now();
    const figures = await downloadArchive(o, session, file);
    const seconds = (Date.now() - started) / 1000;
    let restored: MongoRefreshReport['restored'] = null;
    if (mongorestore) {
      o.onProgress?.({ phase: 'restore' });
      restored = await restoreArchive({ mongorestore, file, fromDb: database, config, env: o.env, signal });
    }
    return {
      kind: 'mongo',
      server: session.target,
      hostKeyFingerprint: session.hostKey.fingerprint,
      database,
      file,
      bytes: figures.bytes,
      sha256: figures.sha256,
      seconds,
      bytesPerSecond: seconds > 0 ? Math.round(figures.bytes / seconds) : figures.bytes,
      restored,
    };
  } finally {
    await session.close();
  }
}

/** Before any download: a restore that cannot happen must not cost a production dump. */
async function requireMongorestore(o: MongoRefreshOptions): Promise<string | null> {
  if (!o.restore) return null;
  const mongorestore = await findOnPath('mongorestore', o.env);
  withoutPassword(o.config.mongo.url, 'MONGODB_URL'); // a password mongorestore cannot read stops us now
  if (mongorestore) return mongorestore;
  throw new EtlError('mongorestore_missing', '--restore needs mongorestore, which is not installed here (not found on PATH)', {
    hint: 'install the MongoDB Database Tools (mongodb-database-tools), or drop --restore: `etl extract --source <archive>` reads the archive without a local MongoDB',
  });
}

/** The remote mongodump's archive into `file`, which appears only when mongodump succeeded and sent an archive. */
async function downloadArchive(o: MongoRefreshOptions, session: SshSession, file: string): Promise<{ bytes: number; sha256: string }> {
  const { config, signal } = o;
  const database = config.remote.mongo.database;
  const { uri, password } = withoutPassword(mongodumpUri(config.remote.mongo.url, database));
  const { channel, exit } = await session.exec(mongodumpCommand(config.remote.mongodumpCommand, database, uri));
  // The password goes where mongodump's prompt reads it. Stdin stays open: a channel past its EOF
  // no longer carries the signal request that stops the remote mongodump on Ctrl-C.
  if (password !== null) channel.write(`${password}\n`);
  const sink = new AtomicFileSink(file);
  try {
    const stderr = collectTail(channel.stderr).catch(() => '');
    const meter = new ByteMeter((p) => o.onProgress?.({ phase: 'download', ...p }), { keepHead: 64 * 1024 });
    const streamError = await receive(channel, meter, sink, signal);
    signal?.throwIfAborted();
    const [result, errText] = await Promise.all([exit, stderr]);
    if (result.code !== 0) throw mongodumpFailed(o.config, session.target, result, redactText(errText, [...config.secrets, ...(password ? [password] : [])]), password !== null);
    if (streamError) throw new SourceError('mongodump_stream_failed', `receiving the archive from ${session.target} failed: ${(streamError as Error).message}`, { cause: streamError });
    checkArchiveHead(meter.head());
    return await sink.commit();
  } catch (error) {
    await sink.discard().catch(() => undefined);
    throw error;
  }
}

/**
 * Streams the channel into the file; returns the stream's error (the exit status explains it
 * better, so it is judged after). On abort: SIGTERM to the remote mongodump (OpenSSH ≥ 7.9 honours
 * signal requests), then closing the channel, which also ends it with SIGPIPE on its next write.
 */
async function receive(channel: ClientChannel, meter: ByteMeter, sink: AtomicFileSink, signal: AbortSignal | undefined): Promise<unknown> {
  const onAbort = (): void => {
    try {
      channel.signal('TERM');
    } catch {
      // the channel may already be closing
    }
    channel.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await pipeline(channel, meter, sink, { signal });
    return null;
  } catch (err) {
    return err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

function mongodumpFailed(config: EtlConfig, target: string, result: SshExecResult, tail: string, passwordOnStdin: boolean): SourceError {
  const how = result.code === null ? (result.signal ? `was killed by ${result.signal}` : 'ended without an exit status (connection lost?)') : `exited with code ${result.code}`;
  return new SourceError('mongodump_failed', `mongodump on ${target} ${how}${tail ? `:\n${lastLines(tail, 12)}` : ''}`, {
    hint:
      result.code === 127
        ? 'mongodump is not installed on the server (or not on its PATH): install mongodb-database-tools there, or set REMOTE_MONGODUMP_COMMAND (e.g. "docker exec -i mongo mongodump": -i, mongodump reads the password on its stdin)'
        : `check REMOTE_MONGODB_URL (as seen from the server) and REMOTE_MONGODB_DATABASE; ${describeMongo(config.remote.mongo)}` +
          (passwordOnStdin ? '. mongodump reads the password on its stdin: a REMOTE_MONGODUMP_COMMAND wrapper must pass stdin on (docker exec -i)' : ''),
  });
}

/** A gzipped mongodump archive starts, once inflated, with the archive magic number. */
function checkArchiveHead(head: Buffer): void {
  let inflated: Buffer;
  try {
    inflated = zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  } catch (err) {
    throw new SourceError('mongodump_not_archive', `what mongodump sent is not gzip data (${(err as Error).message}); the partial file was removed`);
  }
  if (inflated.length < 4 || !inflated.subarray(0, 4).equals(ARCHIVE_MAGIC)) {
    throw new SourceError('mongodump_not_archive', 'what mongodump sent is gzip but not a mongodump archive (magic number 0x8199e26d missing); the partial file was removed');
  }
}

async function restoreArchive(o: {
  mongorestore: string;
  file: string;
  fromDb: string;
  config: EtlConfig;
  env: Env;
  signal?: AbortSignal;
}): Promise<{ into: string; database: string }> {
  const local = o.config.mongo;
  // Like the remote mongodump: the URI without its password, which mongorestore reads on its stdin.
  const { uri, password } = withoutPassword(local.url, 'MONGODB_URL');
  const args = [
    `--uri=${uri}`,
    `--archive=${o.file}`,
    '--gzip',
    '--drop',
    `--nsInclude=${o.fromDb}.*`,
    `--nsFrom=${o.fromDb}.*`,
    `--nsTo=${local.database}.*`,
  ];
  const result = await runChild(o.mongorestore, args, { env: o.env, signal: o.signal, secrets: o.config.secrets, ...(password === null ? {} : { input: `${password}\n` }) });
  if (result.code !== 0) {
    throw new EtlError('mongorestore_failed', `mongorestore into ${describeMongo(local)} failed (exit ${result.code ?? result.signal}):\n${lastLines(redactText(result.stderr, o.config.secrets), 12)}`, {
      hint: `the archive is kept: ${o.file}`,
    });
  }
  return { into: describeMongo(local), database: local.database };
}

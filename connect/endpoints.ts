// The databases a command talks to, wherever they are: TRANSFER_SOURCE / TRANSFER_DESTINATION
// `local` → the local configuration as is; `remote` → an SSH tunnel to the server's database and a
// configuration pointing at the tunnel's local end. One SSH connection carries both tunnels.
//
//   const ep = await openEndpoints(config, { needMongo: true, needPostgres: false, signal });
//   try { … connectMongo(ep.mongo, config.secrets) … } finally { await ep.close(); }
import { ConfigError } from '../errors/etl-error.ts';
import { describeMongo, describePostgres, type EtlConfig, type MongoConfig, type PostgresConfig } from './config.ts';
import { openSshSession, type SshSession } from './ssh-session.ts';

/** The variables that say where each tunnel goes, as seen from the SSH server. */
export const MONGO_TUNNEL_SETTINGS = 'REMOTE_MONGODB_URL';
export const POSTGRES_TUNNEL_SETTINGS = 'REMOTE_POSTGRES_HOST, REMOTE_POSTGRES_PORT';

export interface OpenEndpointsOptions {
  readonly needMongo: boolean;
  readonly needPostgres: boolean;
  readonly signal?: AbortSignal;
}

export interface Endpoints {
  /** Where to read MongoDB: the local config, or the tunnelled remote one (when needMongo). */
  readonly mongo: MongoConfig;
  /** Where to write PostgreSQL: the local config, or the tunnelled remote one (when needPostgres). */
  readonly postgres: PostgresConfig;
  /** What may be printed (no passwords): describeMongo/describePostgres of the two, the configured server and the SSH hop when tunnelled. */
  readonly describe: {
    readonly mongo: string;
    readonly postgres: string;
    /** `user@host:port` of the SSH server, or null when nothing is tunnelled. */
    readonly ssh: string | null;
  };
  /** Closes the tunnels and the SSH connection (idempotent; a no-op when everything is local). */
  close(): Promise<void>;
}

export async function openEndpoints(config: EtlConfig, o: OpenEndpointsOptions): Promise<Endpoints> {
  const remoteMongo = o.needMongo && config.transferSource === 'remote';
  const remotePostgres = o.needPostgres && config.transferDestination === 'remote';
  let mongo: MongoConfig = config.transferSource === 'remote' ? config.remote.mongo : config.mongo;
  let postgres: PostgresConfig = config.transferDestination === 'remote' ? config.remote.postgres : config.postgres;
  if (!remoteMongo && !remotePostgres) {
    return { mongo, postgres, describe: { mongo: describeMongo(mongo), postgres: describePostgres(postgres), ssh: null }, close: async () => {} };
  }

  // Checked before connecting: a URL we could not rewrite must not cost a login.
  const mongoTarget = remoteMongo ? mongoTunnelTarget(config.remote.mongo.url) : null;
  const session: SshSession = await openSshSession({ ssh: config.remote.ssh, signal: o.signal });
  try {
    if (mongoTarget) {
      const fwd = await session.forward(mongoTarget.host, mongoTarget.port, MONGO_TUNNEL_SETTINGS);
      // Unset, REMOTE_MONGODB_URL is still where to look (its default, localhost on the SSH server, failed).
      mongo = {
        url: mongoUrlThroughTunnel(config.remote.mongo.url, fwd.localPort),
        database: config.remote.mongo.database,
        origin: config.remote.mongo.origin ?? 'REMOTE_MONGODB_URL',
        shownAs: `${describeMongo(config.remote.mongo)} via SSH ${session.target}`,
      };
    }
    if (remotePostgres) {
      const r = config.remote.postgres;
      const fwd = await session.forward(r.host, r.port, POSTGRES_TUNNEL_SETTINGS);
      postgres = { ...r, connectionString: null, host: '127.0.0.1', port: fwd.localPort, shownAs: `${describePostgres(r)} via SSH ${session.target}` };
    }
  } catch (err) {
    await session.close();
    throw err;
  }
  return {
    mongo: Object.freeze(mongo),
    postgres: Object.freeze(postgres),
    describe: { mongo: describeMongo(mongo), postgres: describePostgres(postgres), ssh: session.target },
    close: () => session.close(),
  };
}

interface UrlParts {
  readonly scheme: string;
  readonly auth: string;
  readonly hosts: string;
  readonly path: string;
  readonly query: string;
}

function splitMongoUrl(url: string): UrlParts {
  const m = /^(mongodb(?:\+srv)?):\/\/(?:([^@/]*)@)?([^/?]*)(\/[^?]*)?(?:\?(.*))?$/.exec(url);
  if (!m) throw new ConfigError('REMOTE_MONGODB_URL is not a mongodb:// URL');
  return { scheme: m[1]!, auth: m[2] ?? '', hosts: m[3]!, path: m[4] ?? '/', query: m[5] ?? '' };
}

/** host:port the tunnel must reach, from the SSH server's point of view (the URL's first host). */
export function mongoTunnelTarget(url: string): { host: string; port: number } {
  const parts = splitMongoUrl(url);
  if (parts.scheme === 'mongodb+srv') {
    throw new ConfigError('REMOTE_MONGODB_URL uses mongodb+srv://, which cannot go through an SSH tunnel', [], {
      hint: 'give the server as mongodb://host:port as seen from the SSH server (usually mongodb://localhost:27017)',
    });
  }
  const first = parts.hosts.split(',')[0] ?? '';
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(first);
  if (!m) throw new ConfigError('REMOTE_MONGODB_URL has no host');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 27017 };
}

/**
 * The remote URL with its host replaced by the tunnel's local end. Credentials, database and
 * options stay; `directConnection=true` because the driver must not go looking for the replica
 * set's other members at addresses that only exist on the server's network.
 */
export function mongoUrlThroughTunnel(url: string, localPort: number): string {
  const parts = splitMongoUrl(url);
  const params = new URLSearchParams(parts.query);
  for (const key of [...params.keys()]) {
    if (/^(directConnection|replicaSet|loadBalanced)$/i.test(key)) params.delete(key);
  }
  params.set('directConnection', 'true');
  const auth = parts.auth ? `${parts.auth}@` : '';
  return `mongodb://${auth}127.0.0.1:${localPort}${parts.path}?${params.toString()}`;
}

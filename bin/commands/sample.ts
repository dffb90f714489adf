// `etl sample`: writes a deterministic, Wappizy-shaped sample database into MongoDB or as a
// mongodump directory. Exactly one destination: --out DIR, or --mongo-url URL (or MONGODB_URL).
import path from 'node:path';
import { parseCommandLine } from '../flags.ts';
import type { Command, CommandContext } from '../command.ts';
import { commandConfig } from '../config.ts';
import { writeJson } from '../output.ts';
import { formatTable } from '../../report/text-table.ts';
import type { EtlConfig } from '../../connect/config.ts';
import { connectMongo } from '../../connect/mongo.ts';
import { redactUrl } from '../../errors/redact.ts';
import { UsageError } from '../../errors/etl-error.ts';
import { DEFAULT_SCALE, DEFAULT_SEED, generateSample, MAX_SCALE, MIN_SCALE, type SampleGeneration } from '../../sample/generate.ts';
import { writeDump, type DumpReport } from '../../sample/write-dump.ts';
import type { SampleProgress } from '../../sample/write-options.ts';
import { writeMongo, type MongoTargetReport } from '../../sample/write-mongo.ts';

const DEFAULT_DB = 'wappizy';

const usage = `usage: etl sample [--scale N] [--seed S] [--db NAME] (--out DIR [--gzip] | --mongo-url URL)
                  [--drop] [--json]

Writes a deterministic sample of the Wappizy database: every collection the pipeline reads, in
production proportions, with the shapes and quirks real documents have. The same seed and scale
always give the same documents (and, with --out, the same bytes).

destination (exactly one):
  --out DIR          write a mongodump directory: DIR/<db>/<collection>.bson + .metadata.json
  --mongo-url URL    insert into this MongoDB (default: MONGODB_URL from the environment or .env)

options:
  --scale N          documents in all collections together (default ${DEFAULT_SCALE.toLocaleString('en-US')},
                     from ${MIN_SCALE} to ${MAX_SCALE.toLocaleString('en-US')})
  --seed S           integer seed, 0 to 4294967295 (default ${DEFAULT_SEED})
  --db NAME          database name (default: ${DEFAULT_DB}; into MongoDB: MONGODB_DATABASE or the URL's
                     database first)
  --gzip             with --out: gzip the files (.bson.gz, .metadata.json.gz), as mongodump --gzip
  --drop             replace what is there: drop the sample's collections first (MongoDB) or
                     replace their files (--out); without it a non-empty target is refused
  --dotenv FILE      read the configuration from FILE instead of ./.env
  --json             print the report as JSON on stdout

exit codes: 0 written, 1 failed (target not empty, connection…), 2 usage or configuration error
`;

interface Flags {
  readonly scale: number;
  readonly seed: number;
  readonly db: string | undefined;
  readonly out: string | undefined;
  readonly mongoUrl: string | undefined;
  readonly gzip: boolean;
  readonly drop: boolean;
  readonly json: boolean;
}

const SAMPLE_FLAGS = {
  scale: { type: 'string' },
  seed: { type: 'string' },
  db: { type: 'string' },
  out: { type: 'string' },
  'mongo-url': { type: 'string' },
  gzip: { type: 'boolean', default: false },
  drop: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

function parseFlags(argv: readonly string[]): Flags {
  const { values } = parseCommandLine(argv, SAMPLE_FLAGS, { positionals: false, hint: 'run `etl sample --help`' });
  const scale = integerFlag('--scale', values.scale, DEFAULT_SCALE, MIN_SCALE, MAX_SCALE);
  const seed = integerFlag('--seed', values.seed, DEFAULT_SEED, 0, 0xffffffff);
  if (values.out !== undefined && values['mongo-url'] !== undefined) {
    throw new UsageError('sample_two_destinations', '--out and --mongo-url are both given: choose one destination', {
      hint: '--out DIR writes a mongodump directory; --mongo-url URL inserts into MongoDB',
    });
  }
  if (values.gzip && values.out === undefined) throw new UsageError('bad_arguments', '--gzip applies to --out only');
  if (values.db !== undefined && !/^[^/\\. "$*<>:|?]{1,63}$/.test(values.db)) {
    throw new UsageError('bad_arguments', `--db "${values.db}" is not a valid MongoDB database name`);
  }
  return {
    scale,
    seed,
    db: values.db,
    out: values.out,
    mongoUrl: values['mongo-url'],
    gzip: values.gzip,
    drop: values.drop,
    json: values.json,
  };
}

function integerFlag(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const text = raw.replace(/_/g, '');
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError('bad_arguments', `${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

const command: Command = {
  summary: 'write a deterministic Wappizy-shaped sample database (MongoDB or mongodump directory)',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv);
    const target = sampleTarget(ctx, flags);
    const sample = generateSample({ scale: flags.scale, seed: flags.seed });
    const progress = progressPrinter(ctx, flags.json || ctx.verbosity === 'quiet');
    const started = Date.now();
    const write = target.toMongo ? writeToMongo : writeToFolder;
    const { report, where } = await write(ctx, flags, target, sample, progress);
    const durationMs = Date.now() - started;
    progress.end();

    const total = report.collections.reduce((sum, c) => sum + c.documents, 0);
    if (flags.json) {
      writeJson(ctx.stdout, {
        ok: true,
        scale: flags.scale,
        seed: flags.seed,
        database: target.database,
        target: report.kind === 'dump' ? { kind: 'dump', dir: report.dir, gzip: report.gzip } : { kind: 'mongo', url: redactUrl(target.cfg.mongo.url), dropped: report.dropped },
        total_documents: total,
        duration_ms: durationMs,
        collections: report.collections,
      });
      return 0;
    }
    if (ctx.verbosity !== 'quiet') ctx.stdout.write(collectionsTable(report));
    ctx.stdout.write(`${total.toLocaleString('en-US')} documents written to ${where} in ${(durationMs / 1000).toFixed(1)} s (seed ${flags.seed})\n`);
    return 0;
  },
};

interface SampleTarget {
  /** Into MongoDB (else a mongodump folder under --out). */
  readonly toMongo: boolean;
  readonly cfg: EtlConfig;
  readonly database: string;
}

type Progress = ReturnType<typeof progressPrinter>;

/**
 * Where the sample goes and under which database name. Refuses MongoDB when no URL was configured
 * at all (environment or .env): resolveConfig fills in a localhost default, and a sample must never
 * land in a database nobody named.
 */
function sampleTarget(ctx: CommandContext, flags: Flags): SampleTarget {
  const toMongo = flags.out === undefined;
  const cfg = commandConfig(ctx, { mongoUrl: flags.mongoUrl, mongoDatabase: flags.db });
  if (toMongo && !cfg.mongoUrlConfigured) {
    throw new UsageError('sample_no_destination', 'no destination: give --out DIR or --mongo-url URL (or set MONGODB_URL)', {
      hint: 'run `etl sample --help`',
    });
  }
  // resolveConfig answers 'default' when no database was named anywhere.
  const database = flags.db ?? (toMongo && cfg.mongo.database !== 'default' ? cfg.mongo.database : DEFAULT_DB);
  return { toMongo, cfg, database };
}

async function writeToMongo(ctx: CommandContext, flags: Flags, target: SampleTarget, sample: SampleGeneration, progress: Progress): Promise<{ report: MongoTargetReport; where: string }> {
  const { cfg, database } = target;
  const where = `${redactUrl(cfg.mongo.url)} (database ${database})`;
  progress.start(`writing ${flags.scale.toLocaleString('en-US')} documents (seed ${flags.seed}) into ${where}`);
  const conn = await connectMongo({ url: cfg.mongo.url, database }, cfg.secrets);
  try {
    return { report: await writeMongo(sample, { db: conn.db, drop: flags.drop }, { signal: ctx.signal, onProgress: progress.update }), where };
  } finally {
    await conn.close();
  }
}

async function writeToFolder(ctx: CommandContext, flags: Flags, target: SampleTarget, sample: SampleGeneration, progress: Progress): Promise<{ report: DumpReport; where: string }> {
  const { database } = target;
  const where = path.join(path.resolve(ctx.cwd, flags.out!), database);
  progress.start(`writing ${flags.scale.toLocaleString('en-US')} documents (seed ${flags.seed}) to ${where}${flags.gzip ? ' (gzip)' : ''}`);
  const report = await writeDump(
    sample,
    { dir: path.resolve(ctx.cwd, flags.out!), database, gzip: flags.gzip, replace: flags.drop },
    { signal: ctx.signal, onProgress: progress.update },
  );
  return { report, where };
}

function collectionsTable(report: DumpReport | MongoTargetReport): string {
  return report.kind === 'dump'
    ? formatTable(
        ['collection', 'documents', 'bytes', 'file'],
        report.collections.map((c) => [c.name, c.documents, c.bytes, path.basename(c.file)]),
      )
    : formatTable(['collection', 'documents'], report.collections.map((c) => [c.name, c.documents]));
}

export default command;

/**
 * Progress on stderr: a live counter on a terminal; in logs nothing per collection (the table on
 * stdout lists them) unless --verbose; none under --json or --quiet.
 */
function progressPrinter(ctx: CommandContext, silent: boolean) {
  const tty = ctx.stderr.isTTY === true;
  const verbose = ctx.verbosity === 'verbose';
  let live = false;
  const finished = new Set<string>();
  return {
    start(line: string) {
      if (!silent) ctx.stderr.write(`${line}\n`);
    },
    update: (p: SampleProgress) => {
      if (silent || finished.has(p.collection)) return;
      const done = p.written === p.total;
      if (done) finished.add(p.collection);
      if (tty) {
        ctx.stderr.write(`\r\u001b[2K  ${p.collection.padEnd(20)} ${p.written.toLocaleString('en-US').padStart(11)} / ${p.total.toLocaleString('en-US')}`);
        live = true;
        if (done) {
          ctx.stderr.write('\n');
          live = false;
        }
      } else if (done && verbose) {
        ctx.stderr.write(`  ${p.collection.padEnd(20)} ${p.total.toLocaleString('en-US').padStart(11)} documents\n`);
      }
    },
    end() {
      if (live) ctx.stderr.write('\n');
    },
  };
}

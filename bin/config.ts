// The configuration every command resolves: its own flags, the global --dotenv, the environment.
// Also says once when staged runs sit in ./staging, where etl wrote them before ./.etl/runs.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_STAGING, resolveConfig, type ConfigFlags, type EtlConfig } from '../connect/config.ts';
import { ConfigError } from '../errors/etl-error.ts';
import { LATEST_FILE } from '../staging/run-folder.ts';
import type { CommandContext } from './command.ts';

/** Where staged runs went before they moved out of the source tree of a checkout. */
const OLD_DEFAULT_STAGING = 'staging';

export function commandConfig(ctx: CommandContext, flags: Omit<ConfigFlags, 'envFile'> = {}): EtlConfig {
  let envFile: string | undefined;
  if (ctx.dotenv !== undefined) {
    envFile = path.resolve(ctx.cwd, ctx.dotenv);
    if (!existsSync(envFile)) {
      throw new ConfigError(`--dotenv: ${envFile}: not found`, [], {
        context: { flag: '--dotenv', file: envFile },
        hint: 'give the path of an existing file of NAME=value lines, or leave --dotenv out to read ./.env',
      });
    }
  }
  const config = resolveConfig({ flags: { ...flags, envFile }, env: ctx.env, cwd: ctx.cwd });
  // Only when the default is in use: --staging, ETL_STAGING or .env chose the folder on purpose.
  if (config.stagingDir === path.resolve(ctx.cwd, DEFAULT_STAGING)) noticeOldStaging(ctx, config);
  return config;
}

/**
 * Runs made before the default moved are still in ./staging: say how to keep using them, once, on
 * stderr (never under --json or --quiet, whose outputs scripts read).
 */
function noticeOldStaging(ctx: CommandContext, config: EtlConfig): void {
  const old = path.resolve(ctx.cwd, OLD_DEFAULT_STAGING);
  if (config.stagingDir === old || !existsSync(path.join(old, LATEST_FILE))) return;
  if (existsSync(path.join(config.stagingDir, LATEST_FILE))) return;
  if (ctx.verbosity === 'quiet' || ctx.argv.includes('--json')) return;
  ctx.stderr.write(
    `note: staged runs found in ${old} (the default folder of earlier versions); this etl uses ${config.stagingDir}.\n` +
      `      Keep using the old ones with --staging ${OLD_DEFAULT_STAGING} (or ETL_STAGING=${OLD_DEFAULT_STAGING}), or move them: mkdir -p ${path.relative(ctx.cwd, config.stagingDir) || '.'} && mv ${OLD_DEFAULT_STAGING}/2* ${OLD_DEFAULT_STAGING}/${LATEST_FILE} ${path.relative(ctx.cwd, config.stagingDir) || '.'}/\n`,
  );
}

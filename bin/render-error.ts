// The one place an error becomes output: a short line and a hint for people (stderr), or a JSON
// object for scripts (stdout, under --json). Returns the exit code.
import type { Writable } from 'node:stream';
import { EtlError, ConfigError } from '../model/errors.ts';
import { redactText } from '../connect/redact.ts';
import { paint } from './output.ts';

export interface RenderErrorOptions {
  readonly json: boolean;
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly secrets?: readonly string[];
}

export function renderError(error: unknown, o: RenderErrorOptions): number {
  const secrets = o.secrets ?? [];
  const etl = error instanceof EtlError ? error : null;
  const exitCode = etl ? etl.exitCode : 1;
  const message = redactText(error instanceof Error ? error.message : String(error), secrets);
  if (o.json) {
    const body = {
      ok: false,
      error: {
        code: etl?.code ?? 'internal',
        message,
        hint: etl?.hint ?? null,
        context: etl?.context ?? {},
        findings: error instanceof ConfigError ? error.findings : undefined,
      },
    };
    o.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return exitCode;
  }
  const color = paint(o.stderr, o.env);
  o.stderr.write(`${color.red('error:')} ${message}\n`);
  if (etl?.hint) o.stderr.write(`${color.dim('hint:')} ${redactText(etl.hint, secrets)}\n`);
  if (!etl && error instanceof Error && error.stack) {
    // Not one of ours: a bug. The stack helps whoever reports it.
    o.stderr.write(`${color.dim(redactText(error.stack, secrets))}\n`);
  }
  return exitCode;
}

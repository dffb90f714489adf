// Progress as plain lines, for logs and pipes (stderr is not a terminal), and for --verbose.
//   log:     nothing per table (the summary table on stdout has one line per table); for long work a
//            heartbeat line at most every ETL_PROGRESS_SECONDS (default 30) with totals, percent,
//            rate and time left; in a multi-stage command, one line per stage when it ends.
//   verbose: a timestamped line per event: the plan, every batch, every phase, every item done.
import type { CommandContext } from '../command.ts';
import { ConfigError } from '../../errors/etl-error.ts';
import { quotedSettingValue, SECONDS_SHAPE } from '../../errors/redact.ts';
import { count, duration, gaugeText } from './meter.ts';
import type { StageChange, StageState } from './stage-state.ts';

const DEFAULT_HEARTBEAT_SECONDS = 30;

/**
 * ETL_PROGRESS_SECONDS in milliseconds (unset or empty: the default). bin/etl.ts reads it before a
 * command starts, so a value that is no positive number stops it then (exit 2), not once a stage
 * has been working for a while, and never as a default taken silently.
 */
export function heartbeatMs(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env.ETL_PROGRESS_SECONDS;
  if (raw === undefined || raw.trim() === '') return DEFAULT_HEARTBEAT_SECONDS * 1000;
  const s = Number(raw);
  if (Number.isFinite(s) && s > 0) return s * 1000;
  throw new ConfigError(`environment variable ETL_PROGRESS_SECONDS is not a positive number of seconds: ${quotedSettingValue(raw, SECONDS_SHAPE)}`, [], {
    context: { variable: 'ETL_PROGRESS_SECONDS' },
    hint: `a number of seconds between two progress lines in logs, e.g. ETL_PROGRESS_SECONDS=${DEFAULT_HEARTBEAT_SECONDS} (the default when unset)`,
  });
}

export async function logStage<R>(ctx: CommandContext, state: StageState, work: Promise<R>, endLine: ((r: R) => string) | null): Promise<R> {
  const every = heartbeatMs(ctx.env);
  let lastLine = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - lastLine < every) return;
    lastLine = Date.now();
    ctx.stderr.write(`${heartbeat(state)}\n`);
  }, Math.min(every, 1000));
  // A notice cannot wait for the next heartbeat: the operator watching the log needs it now (one
  // given before this stage's turn to be shown, `etl run`'s load waiting while extract reads, too).
  const notice = (text: string): boolean => ctx.stderr.write(`${state.name}: ${text}\n`);
  if (state.noticeInForce !== null) notice(state.noticeInForce);
  const off = state.onChange((c) => c.kind === 'notice' && notice(c.text));
  try {
    const r = await work;
    if (endLine) ctx.stderr.write(`${endLine(r)}\n`);
    return r;
  } finally {
    clearInterval(timer);
    off();
  }
}

/** `extract: 412,000 of 1,000,000 documents (41%), 3,400/s, ETA 2 min 53 s; now users` */
function heartbeat(state: StageState): string {
  const now = state.current();
  const where = now ? `; now ${now.name}${now.phase ? ` (${now.phase})` : ''}` : state.stagePhase ? `; ${state.stagePhase}` : '';
  return `${state.name}: ${gaugeText(state.totals())}${where}`;
}

export async function verboseStage<R>(ctx: CommandContext, state: StageState, work: Promise<R>, endLine: (r: R) => string): Promise<R> {
  const line = (text: string) => ctx.stderr.write(`[${duration(Date.now() - state.startedAt).padStart(9)}] ${state.name} ${text}\n`);
  const off = state.onChange((c) => {
    const text = verboseText(state, c);
    if (text !== null) line(text);
  });
  try {
    const r = await work;
    line(`done: ${endLine(r)}`);
    return r;
  } finally {
    off();
  }
}

function verboseText(state: StageState, c: StageChange): string | null {
  if (c.kind === 'plan') return `${state.title}: ${count(state.items.size)} item(s) [${[...state.items.keys()].join(', ')}]`;
  if (c.kind === 'detail') return `${c.item ?? ''}${c.item ? ': ' : ''}${c.text}`;
  if (c.kind === 'notice') return c.text;
  if (c.item === null) return c.kind === 'phase' ? state.stagePhase : null;
  const s = state.items.get(c.item)!;
  switch (c.kind) {
    case 'progress':
      return `${c.item}: ${gaugeText(state.gauge(c.item))}`;
    case 'phase':
      return `${c.item}: ${s.phase}`;
    case 'finish':
      return `${s.summary}`;
    case 'fail':
      return `${c.item}: failed`;
  }
}

// CPU seconds the local servers spent during a step (Linux /proc; null elsewhere or for a server the
// bench did not start): on 2 cores, etl's CPU, FerretDB's and PostgreSQL's share the same cores, so
// a step's wall time is read against the three. A PostgreSQL backend's CPU is counted by its
// postmaster once the backend has exited and been reaped (the step's connections close with its
// worker); background processes that are still alive count with their own figure.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const TICKS_PER_SECOND = 100;

interface Stat {
  readonly ppid: number;
  /** utime + stime of the process itself, seconds. */
  readonly own: number;
  /** cutime + cstime: its exited, reaped children, seconds. */
  readonly reaped: number;
}

function stat(pid: number): Stat | null {
  try {
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ').map(Number);
    return { ppid: f[1]!, own: (f[11]! + f[12]!) / TICKS_PER_SECOND, reaped: (f[13]! + f[14]!) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

/** CPU seconds of `pid`, its reaped children and its living children (one level: PostgreSQL's shape). */
export function treeCpuSeconds(pid: number | null): number | null {
  if (pid === null) return null;
  const root = stat(pid);
  if (!root) return null;
  let total = root.own + root.reaped;
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child) || child === pid) continue;
    const s = stat(child);
    if (s && s.ppid === pid) total += s.own + s.reaped;
  }
  return total;
}

/** The postmaster of a cluster the bench started (`<dir>/data/postmaster.pid`), else null. */
export function postmasterPid(clusterDir: string | null): number | null {
  if (clusterDir === null) return null;
  try {
    const pid = Number(readFileSync(path.join(clusterDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Measures the servers' CPU around `work`: seconds each, rounded, or null when unknown. */
export async function withServerCpu<T>(pids: { ferretdb: number | null; postgres: number | null }, work: () => Promise<T>): Promise<{ result: T; ferretdb_cpu_seconds: number | null; postgres_cpu_seconds: number | null }> {
  const before = { f: treeCpuSeconds(pids.ferretdb), p: treeCpuSeconds(pids.postgres) };
  const result = await work();
  // Let the postmaster reap the step's backends (their connections closed as the worker exited).
  await new Promise((resolve) => setTimeout(resolve, 200));
  const delta = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.round((b - a) * 100) / 100);
  return { result, ferretdb_cpu_seconds: delta(before.f, treeCpuSeconds(pids.ferretdb)), postgres_cpu_seconds: delta(before.p, treeCpuSeconds(pids.postgres)) };
}

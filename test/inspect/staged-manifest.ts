// A run folder with a hand-written manifest.json: only the stage sections `etl status` reads.
import { mkdir, writeFile } from 'node:fs/promises';
import { runPaths } from '../../staging/run-folder.ts';

export async function stagedRun(staging: string, runId: string, stages: Record<string, unknown>): Promise<void> {
  const p = runPaths(staging, runId);
  await mkdir(p.dir, { recursive: true });
  const manifest = { format: 1, run_id: runId, tool_version: '0.1.0', pipeline_sha256: 'x', source: { kind: 'mongodb', description: 'test' }, destination: null, stages };
  await writeFile(p.manifest, JSON.stringify(manifest, null, 2));
}

// The worker-thread side of a parallel transform (parallel.ts): takes one collection job at a time
// and runs it exactly as the stage's own thread would, reporting progress and the outcome back.
import { parentPort, workerData } from 'node:worker_threads';
import type { PipelineModel } from '../model/types.ts';
import { runPaths } from '../staging/run-folder.ts';
import { transformCollection } from './collection-job.ts';
import { toWire, type FromWorker, type ToWorker, type WorkerSetup } from './parallel.ts';
import type { TransformProgress } from './options.ts';

const port = parentPort!;
const setup = workerData as WorkerSetup & { readonly model: PipelineModel };
const paths = runPaths(setup.stagingDir, setup.runId);
const stop = new AbortController();
const send = (m: FromWorker): void => port.postMessage(m);
const onProgress = (event: TransformProgress): void => send({ type: 'progress', event: event.kind === 'table_failed' ? { ...event, error: toWire(event.error) } : event });

port.on('message', (m: ToWorker) => {
  if (m.type === 'abort') {
    stop.abort(new Error('aborted'));
    return;
  }
  transformCollection(m.job, { model: setup.model, paths, signal: stop.signal, onProgress }).then(
    (outcome) => send({ type: 'done', outcome }),
    (error: unknown) => send({ type: 'failed', error: toWire(error) }),
  );
});

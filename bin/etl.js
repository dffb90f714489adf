#!/usr/bin/env node
// The installed `etl` command: runs the TypeScript entry point through tsx, so no build step exists.
import { register } from 'tsx/esm/api';
register();
await import('./etl.ts');

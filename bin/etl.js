#!/usr/bin/env node
// The installed `etl` command: runs the TypeScript entry point through tsx, so no build step exists.
// Plain JavaScript that any Node.js parses, so that an older Node than package.json's engines is
// told so here, up front, rather than failing mid-run on an API it lacks.
import { readFileSync } from 'node:fs';

/** The [major, minor] engines.node names (">=20.19"): package.json is the one home of the minimum. */
function minimumNode() {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const [, major, minor] = /^>=\s*(\d+)\.(\d+)/.exec(pkg.engines.node);
  return [Number(major), Number(minor)];
}

const [major, minor] = process.versions.node.split('.').map(Number);
const [needMajor, needMinor] = minimumNode();
if (major < needMajor || (major === needMajor && minor < needMinor)) {
  process.stderr.write(
    `error: etl needs Node.js >= ${needMajor}.${needMinor}, this is Node.js ${process.versions.node} (${process.execPath}) [node_too_old]\n` +
      `hint: install Node.js ${needMajor}.${needMinor} or later (https://nodejs.org, or \`nvm install ${needMajor}\`) and run etl with it\n`,
  );
  process.exit(2);
}

const { register } = await import('tsx/esm/api');
register();
await import('./etl.ts');

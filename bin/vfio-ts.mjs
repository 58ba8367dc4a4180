#!/usr/bin/env node
// The vfio-ts command. From a built package it runs dist/cli/main.js; in a
// clone (npm install, no build) it runs the TypeScript sources under tsx.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli', 'main.js');
const source = join(root, 'src', 'cli', 'main.ts');

let main;
if (existsSync(built) && !existsSync(source)) {
  main = await import(pathToFileURL(built).href);
} else {
  // tsx's loader also lets `vfio-ts run program.ts` import TypeScript programs
  const { register } = await import('tsx/esm/api');
  register();
  main = await import(pathToFileURL(source).href);
}
process.exitCode = await main.runCli(process.argv.slice(2));

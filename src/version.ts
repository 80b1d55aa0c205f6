import { existsSync, readFileSync } from 'node:fs';

// src/version.ts in the repository, dist/src/version.js in the package: the
// package.json is one or two folders up.
const candidates = [new URL('../package.json', import.meta.url), new URL('../../package.json', import.meta.url)];
const manifestUrl = candidates.find((url) => existsSync(url))!;
const manifest = JSON.parse(readFileSync(manifestUrl, 'utf8')) as { version: string };

export const VERSION: string = manifest.version;

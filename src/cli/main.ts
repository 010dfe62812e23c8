#!/usr/bin/env node
/** The meshid executable: the bundled program when the build made one (bundle-script.ts), else program.ts. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBundle } from './bundle-script.js';

const bundle = loadBundle(path.dirname(fileURLToPath(import.meta.url)));
if (bundle) bundle.run();
else await import('./program.js');

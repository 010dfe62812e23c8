/**
 * node-forge, restricted to what meshid uses: its ASN.1 codec and byte-string utilities. Loading
 * the whole package (TLS, ciphers, PKI, ...) costs about 10 MB of resident memory in every
 * process; these two modules cost about 2.
 */
import { createRequire } from 'node:module';
import type NodeForge from 'node-forge';

const require = createRequire(import.meta.url);
const forge = require('node-forge/lib/forge') as typeof NodeForge;
require('node-forge/lib/asn1');
require('node-forge/lib/util');

export default forge;

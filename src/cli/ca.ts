import { defineCommand } from './command.js';
import { MeshidError } from '../lib/errors.js';

// Placeholder until the command lands; replaced by its issue's work.
export default defineCommand({
  name: 'ca',
  summary: 'not implemented yet',
  options: {},
  run: async () => {
    throw new MeshidError('unimplemented', 'not_implemented', 'this command is not implemented yet');
  },
});

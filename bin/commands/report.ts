import type { Command } from '../command.ts';
const command: Command = { summary: 'write a self-contained HTML report of a run', usage: 'usage: etl report [--run ID]\n', async run() { return 0; } };
export default command;

// The `paas` entry point: parses the command name, loads only that command's module, runs it.
// Help and --version read only the table below, so they never load the daemon's modules.
import { COMMANDS, findCommand, helpText } from './table.ts';
import { exitCodeFor, PaasError } from '../errors/index.ts';

const VERSION = '0.1.0';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' ? rest[0] : undefined;
    process.stdout.write(helpText(topic));
    return 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`paas ${VERSION}\n`);
    return 0;
  }
  const cmd = findCommand(name);
  if (cmd === undefined) {
    process.stderr.write(`paas: unknown command "${name}". Run "paas help" for the list.\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpText(cmd.name));
    return 0;
  }
  const mod = await cmd.load();
  return mod.run(cmd.name, rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof PaasError) {
      process.stderr.write(`paas: ${err.message}\n`);
    } else {
      process.stderr.write(
        `paas: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
    }
    // A command that failed half-way (a daemon that could not bind its port) may still hold
    // timers, sockets or child pipes open; the failure is final, so end the process now.
    process.exit(exitCodeFor(err));
  },
);

export { COMMANDS };

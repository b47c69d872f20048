// Every CLI command: name, usage, one-line summary and a lazy loader of the module that runs
// it. Nothing here imports a command's code, so help stays instant.

export interface CommandModule {
  run(name: string, args: string[]): Promise<number>;
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  load: () => Promise<CommandModule>;
}

const container = () => import('./commands/container.ts');
const router = () => import('./commands/router.ts');

export const COMMANDS: readonly Command[] = [
  { name: 'container:run', usage: 'container:run [--rootfs DIR | --image REF] [--memory 64m] [--cpus 0.5] [--pids 64] [--net none|bridge] [--runtime native|runc] [--user U] [--env K=V]… [--workdir DIR] [--volume SRC:DST[:ro]]… [--data-dir DIR] -- CMD…', summary: 'run a container in the foreground without the daemon (debugging)', load: container },
  { name: 'router', usage: 'router [--data-dir DIR] [--http-port 80] [--domain localhost] [--workers N]', summary: 'run the HTTP router process (the daemon starts it for you)', load: router },
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

export function helpText(topic?: string): string {
  if (topic !== undefined) {
    const c = findCommand(topic);
    if (c !== undefined) return `Usage: paas ${c.usage}\n\n  ${c.summary}\n`;
  }
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: paas COMMAND [args…]\n\nCommands:\n${lines.join('\n')}\n\nRun "paas help COMMAND" or "paas COMMAND --help" for a command's usage.\n`;
}

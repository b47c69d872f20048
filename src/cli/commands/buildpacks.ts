// buildpacks | buildpacks:detect — local commands (no daemon): which buildpacks exist, and what
// a directory would build with, why, and the Dockerfile it renders.
import { parseCommand } from './args.ts';
import { describeChoice, detect, listBuildpacks } from '../../buildpacks/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { printJson, table } from './client.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, {
    buildpack: { type: 'string' },
    'dockerfile-only': { type: 'boolean' },
  });
  switch (name) {
    case 'buildpacks': {
      const list = listBuildpacks();
      if (values.json === true) printJson(list);
      else
        process.stdout.write(
          `Detection order (a Dockerfile in the repository comes first):\n${table([['NAME', 'DETECTS'], ...list.map((b) => [b.name, b.summary])])}`,
        );
      return 0;
    }
    case 'buildpacks:detect': {
      const dir = positionals[0] ?? '.';
      const choice = detect(dir, { forced: values.buildpack });
      if (values.json === true) {
        printJson(choice);
      } else if (values['dockerfile-only'] === true) {
        process.stdout.write(choice.dockerfile ?? '');
      } else {
        process.stderr.write(`${describeChoice(choice)}\n`);
        for (const w of choice.warnings) process.stderr.write(`warning: ${w}\n`);
        if (choice.processTypes !== null)
          for (const [t, cmd] of Object.entries(choice.processTypes))
            process.stderr.write(`process ${t}: ${cmd}\n`);
        process.stdout.write(choice.dockerfile ?? '');
      }
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown buildpacks command ${name}`);
  }
}

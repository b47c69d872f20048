// releases | rollback | builds
import { parseCommand } from './args.ts';
import { parseAppName } from '../../apps/index.ts';
import { InvalidArgument } from '../../errors/index.ts';
import { call, enc, printJson, table } from './client.ts';
import type { BuildInfo, ReleaseInfo, RollbackResult } from '../../api/index.ts';

export async function run(name: string, args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args);
  const app = parseAppName(positionals[0]);
  switch (name) {
    case 'releases': {
      const rs = await call<ReleaseInfo[]>('GET', `/api/apps/${enc(app)}/releases`);
      if (values.json === true) printJson(rs);
      else if (rs.length === 0) process.stdout.write(`${app} has no releases yet\n`);
      else
        process.stdout.write(
          table([
            ['VERSION', 'GIT SHA', 'BUILDPACK', 'STATUS', 'CREATED', 'DESCRIPTION'],
            ...rs.map((r) => [
              r.version,
              r.gitSha.slice(0, 7),
              r.buildpack ?? '-',
              r.status ?? '-',
              r.createdAt,
              r.description,
            ]),
          ]),
        );
      return 0;
    }
    case 'rollback': {
      const target = positionals[1];
      process.stderr.write(`Rolling back ${app}${target === undefined ? '' : ` to ${target}`}… `);
      const r = await call<RollbackResult>(
        'POST',
        `/api/apps/${enc(app)}/rollback`,
        target === undefined ? {} : { release: target },
      );
      process.stderr.write(`done, ${r.release.version}\n`);
      if (values.json === true) printJson(r);
      else process.stdout.write(`${r.release.description}: ${r.release.version} serves ${r.url}\n`);
      return 0;
    }
    case 'builds': {
      const bs = await call<BuildInfo[]>('GET', `/api/apps/${enc(app)}/builds`);
      if (values.json === true) printJson(bs);
      else if (bs.length === 0) process.stdout.write(`${app} has no builds yet\n`);
      else
        process.stdout.write(
          table([
            ['ID', 'GIT SHA', 'STATUS', 'STARTED', 'ERROR'],
            ...bs.map((b) => [
              String(b.id),
              b.gitSha.slice(0, 7),
              b.status,
              b.startedAt,
              (b.error ?? '').split('\n')[0]!.slice(0, 80),
            ]),
          ]),
        );
      return 0;
    }
    default:
      throw new InvalidArgument(`unknown releases command ${name}`);
  }
}

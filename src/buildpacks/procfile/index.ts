// The procfile buildpack: the last resort for an app with only a Procfile. The repository
// is copied to /app on the Debian base and each Procfile line runs there as is.
import { BuildFailed } from '../../errors/index.ts';
import type { AppFiles } from '../app.ts';
import { readProcfile } from '../procfile.ts';
import { APP_USER, loadTemplate } from '../render.ts';
import type { Buildpack, Plan } from '../types.ts';

const template = loadTemplate(new URL('./Dockerfile.hbs', import.meta.url));

export const procfile: Buildpack = {
  name: 'procfile',
  summary: 'any app with a Procfile: the repository in /app on debian:bookworm',
  detect: (app) => (app.isFile('Procfile') ? 'Procfile found' : null),
  plan(app: AppFiles): Plan {
    const types = readProcfile(app);
    if (types === null || Object.keys(types).length === 0)
      throw new BuildFailed(
        'the procfile buildpack needs a Procfile with at least one "type: command" line',
        { step: 'detect' },
      );
    const first = types.web ?? Object.values(types)[0]!;
    return {
      inputs: {
        types: Object.keys(types).join(', '),
        cmd: ['/bin/sh', '-c', first],
        user: APP_USER,
      },
      processTypes: types,
      warnings: [],
      files: {},
    };
  },
  render: template,
};

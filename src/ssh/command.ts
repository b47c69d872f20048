// The one command the SSH server runs: what git's transport sends as the exec request
// (git's connect.c: `<service> <sq-quoted path>`), parsed strictly. No shell ever sees it:
// the service picks a fixed program and the path must be exactly one app's repository, so
// `'x.git'; id`, `../x.git`, `'a/../b.git'` or anything but these two services is refused.
import { parseAppName, type AppName } from '../apps/index.ts';
import { InvalidArgument } from '../errors/index.ts';

export type GitService = 'git-receive-pack' | 'git-upload-pack';

export interface GitCommand {
  service: GitService;
  app: AppName;
}

// git sq_quote()s the path: `'…'` with `'` and `!` escaped; older clients and hand-written
// remotes send it bare or double-quoted. An app name needs none of the escapes, so any
// quote, backslash or space inside the path is refused rather than interpreted.
const COMMAND =
  /^(git-receive-pack|git-upload-pack) (?:'([^'"\\\s]*)'|"([^'"\\\s]*)"|([^'"\\\s]+))$/;

const USAGE =
  "only `git push` and `git fetch` of ssh://git@HOST:PORT/APP.git are served (git-receive-pack or git-upload-pack 'APP.git')";

export function parseGitCommand(raw: string): GitCommand {
  const m = raw.length <= 512 ? COMMAND.exec(raw) : null;
  if (m === null) throw new InvalidArgument(`this is not a shell: ${USAGE}`, { reason: 'command' });
  const path = (m[2] ?? m[3] ?? m[4])!.replace(/^\//, '');
  const name = /^([^/]+)\.git$/.exec(path)?.[1];
  if (name === undefined)
    throw new InvalidArgument(`"${path}" is not an app repository: ${USAGE}`, {
      reason: 'path',
    });
  return { service: m[1] as GitService, app: parseAppName(name) };
}

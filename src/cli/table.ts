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
const daemon = () => import('./commands/daemon.ts');
const apps = () => import('./commands/apps.ts');
const config = () => import('./commands/config.ts');
const releases = () => import('./commands/releases.ts');
const ps = () => import('./commands/ps.ts');
const logs = () => import('./commands/logs.ts');
const domains = () => import('./commands/domains.ts');
const drains = () => import('./commands/drains.ts');
const ports = () => import('./commands/ports.ts');
const certs = () => import('./commands/certs.ts');
const buildpacks = () => import('./commands/buildpacks.ts');
const oneoff = () => import('./commands/run.ts');
const images = () => import('./commands/images.ts');
const registry = () => import('./commands/registry.ts');
const login = () => import('./commands/login.ts');
const tokens = () => import('./commands/tokens.ts');
const sshKeys = () => import('./commands/ssh-keys.ts');
const storage = () => import('./commands/storage.ts');
const services = () => import('./commands/services.ts');
const certsAuto = () => import('./commands/certs-auto.ts');

export const COMMANDS: readonly Command[] = [
  {
    name: 'daemon',
    usage:
      'daemon [--data-dir /var/lib/paas] [--api-port 7070] [--http-port 80] [--https-port 443] [--domain localhost] [--runtime native|runc] [--scheduler local|swarm] [--docker-socket PATH] [--registry-address HOST:PORT] [--tls-cert F --tls-key F] [--max-push-size 1g] [--log-retention 50m] [--build-memory 2g] [--build-pids 4096] [--build-cpus CORES] [--build-timeout 30m] [--build-disk 10g] [--default-memory 512m] [--default-pids 4096] [--registry-mirror URL]… [--ssh-port 2222] [--drain-ca PEM]… [--drain-buffer 8m] [--acme-directory URL] [--acme-ca-file F] [--acme-renew-before 30d] [--acme-check-every 1h]',
    summary: 'run the paas daemon: API, git, registry; starts the router',
    load: daemon,
  },
  { name: 'apps:create', usage: 'apps:create NAME [--json]', summary: 'create an app', load: apps },
  { name: 'apps:list', usage: 'apps:list [--json]', summary: 'list apps', load: apps },
  {
    name: 'apps:info',
    usage: 'apps:info NAME [--json]',
    summary: 'show an app: release, URL, domains',
    load: apps,
  },
  {
    name: 'apps:destroy',
    usage: 'apps:destroy NAME --force [--purge-storage]',
    summary: 'stop and delete an app with its releases, config and logs',
    load: apps,
  },
  {
    name: 'config',
    usage: 'config NAME [--json] [--shell]',
    summary: "show an app's config vars",
    load: config,
  },
  {
    name: 'config:get',
    usage: 'config:get NAME KEY [--json]',
    summary: 'print one config var',
    load: config,
  },
  {
    name: 'config:set',
    usage: 'config:set NAME KEY=VALUE…',
    summary: 'set config vars: a new release, redeployed',
    load: config,
  },
  {
    name: 'config:unset',
    usage: 'config:unset NAME KEY…',
    summary: 'unset config vars: a new release, redeployed',
    load: config,
  },
  {
    name: 'ps',
    usage: 'ps NAME [--json]',
    summary: "list an app's processes: state, uptime, restarts, address, memory, CPU",
    load: ps,
  },
  {
    name: 'ps:scale',
    usage: 'ps:scale NAME [TYPE=COUNT…] [--json]',
    summary: 'set how many processes of each type run (no pairs: show the formation)',
    load: ps,
  },
  {
    name: 'ps:restart',
    usage: 'ps:restart NAME [TYPE]',
    summary:
      'restart every process (or one type), rolling: new ones checked and routed before old ones stop',
    load: ps,
  },
  {
    name: 'ps:stop',
    usage: 'ps:stop NAME',
    summary: 'stop every process until ps:start or the next deploy',
    load: ps,
  },
  {
    name: 'ps:start',
    usage: 'ps:start NAME',
    summary: 'start the formation of a stopped app',
    load: ps,
  },
  {
    name: 'resources:set',
    usage:
      'resources:set NAME [--memory 256m] [--cpus 0.5] [--pids 4096] [--cap-net-raw on|off] [--ps TYPE] [--json]',
    summary:
      'set memory, CPU and task limits and raw sockets (all types, or one), applied at the next start',
    load: ps,
  },
  {
    name: 'run',
    usage: 'run NAME [--no-tty] -- CMD…',
    summary:
      'run a one-off command in a container of the current release, attached (a terminal when you are at one)',
    load: oneoff,
  },
  {
    name: 'releases',
    usage: 'releases NAME [--json]',
    summary: "list an app's releases with their git shas",
    load: releases,
  },
  {
    name: 'rollback',
    usage: 'rollback NAME [vN] [--json]',
    summary: "a new release from an earlier one's image and config",
    load: releases,
  },
  {
    name: 'builds',
    usage: 'builds NAME [--json]',
    summary: "list an app's builds",
    load: releases,
  },
  {
    name: 'logs',
    usage: 'logs NAME [-n 100] [-t|--tail] [--ps web] [--source app|build|router|system]',
    summary: "show (or follow) an app's logs",
    load: logs,
  },
  {
    name: 'domains',
    usage: 'domains NAME [--json]',
    summary: "list an app's domains",
    load: domains,
  },
  {
    name: 'domains:add',
    usage: 'domains:add NAME HOST',
    summary: 'route a custom domain to an app',
    load: domains,
  },
  {
    name: 'domains:remove',
    usage: 'domains:remove NAME HOST',
    summary: 'remove a custom domain',
    load: domains,
  },
  {
    name: 'domains:redirect-https',
    usage: 'domains:redirect-https NAME on|off [--hsts]',
    summary: 'answer HTTP with a 308 to HTTPS for each host that has a certificate',
    load: certs,
  },
  {
    name: 'certs',
    usage: 'certs NAME [--json]',
    summary: "show each of an app's hosts with its certificate, expiry and auto state",
    load: certs,
  },
  {
    name: 'certs:add',
    usage: 'certs:add NAME --cert FILE --key FILE | certs:add --default --cert FILE --key FILE',
    summary: "serve an operator's certificate (or the default one for <app>.<domain>)",
    load: certs,
  },
  {
    name: 'certs:remove',
    usage: 'certs:remove NAME HOST',
    summary: "stop serving an app's certificate for a host",
    load: certs,
  },
  {
    name: 'drains',
    usage: 'drains NAME [--json]',
    summary: "list an app's log drains: state, delivered and dropped lines",
    load: drains,
  },
  {
    name: 'drains:add',
    usage: 'drains:add NAME URL',
    summary: "ship an app's logs to syslog+tcp://host:port, syslog+tls://host:port or https://…",
    load: drains,
  },
  {
    name: 'drains:remove',
    usage: 'drains:remove NAME URL|ID',
    summary: "stop shipping an app's logs to a drain",
    load: drains,
  },
  {
    name: 'ports',
    usage: 'ports NAME [--json]',
    summary: "show an app's web port and why it is that one",
    load: ports,
  },
  {
    name: 'ports:set',
    usage: 'ports:set NAME PORT',
    summary: 'route to PORT and set PORT to it (a new release)',
    load: ports,
  },
  {
    name: 'ports:clear',
    usage: 'ports:clear NAME',
    summary: "back to the image's one EXPOSEd TCP port, else 5000 (a new release)",
    load: ports,
  },
  {
    name: 'certs:auto',
    usage: 'certs:auto NAME [--email E] [--off] [--json]',
    summary:
      "automatic certificates (ACME HTTP-01) for an app's custom domains: order now, renew before expiry",
    load: certsAuto,
  },
  {
    name: 'images:gc',
    usage: 'images:gc [--dry-run] [--json]',
    summary: 'free image data no tag, recent release or running container uses',
    load: images,
  },
  {
    name: 'images:pull',
    usage: 'images:pull REF [--json]',
    summary: 'pull an image (or refresh its tag) from its registry now',
    load: images,
  },
  {
    name: 'registry:login',
    usage: 'registry:login HOST -u USER --password-stdin',
    summary: 'store credentials for a registry (checked against it first; kept 0600)',
    load: registry,
  },
  {
    name: 'registry:logout',
    usage: 'registry:logout HOST',
    summary: "forget a registry's credentials",
    load: registry,
  },
  {
    name: 'login',
    usage: 'login https://HOST:7070 [--fingerprint SHA256:…] [--token T]',
    summary:
      'pin the server certificate and store the API URL and a token in ~/.config/paas (token from --token, PAAS_TOKEN or stdin)',
    load: login,
  },
  {
    name: 'git:remote',
    usage: 'git:remote APP [NAME]',
    summary: 'add a git remote (default paas) for APP with no secret in its URL',
    load: login,
  },
  {
    name: 'git-credential',
    usage: 'git-credential get|store|erase',
    summary: "git's credential helper for the logged-in API (git:remote sets it up)",
    load: login,
  },
  {
    name: 'tokens',
    usage: 'tokens [--json]',
    summary: 'list the scoped API tokens (never their secrets)',
    load: tokens,
  },
  {
    name: 'tokens:create',
    usage:
      'tokens:create --scope deploy|read|admin [--app NAME]… [--expires 30d] [--label L] [--json|--quiet]',
    summary: 'create a scoped token; it is printed once',
    load: tokens,
  },
  {
    name: 'tokens:revoke',
    usage: 'tokens:revoke ID',
    summary: 'revoke a token at once',
    load: tokens,
  },
  {
    name: 'tokens:rotate-admin',
    usage: 'tokens:rotate-admin [--json|--quiet]',
    summary: 'write a new admin token file; the old admin token stops working',
    load: tokens,
  },
  {
    name: 'ssh-keys',
    usage: 'ssh-keys [--json]',
    summary: 'list the SSH keys that may push: name, type, fingerprint, apps',
    load: sshKeys,
  },
  {
    name: 'ssh-keys:add',
    usage: 'ssh-keys:add NAME [FILE] [--app APP]… (the public key on stdin unless FILE)',
    summary: 'let an SSH public key push (to every app, or only the --app ones)',
    load: sshKeys,
  },
  {
    name: 'ssh-keys:remove',
    usage: 'ssh-keys:remove NAME',
    summary: 'stop an SSH key from pushing',
    load: sshKeys,
  },
  {
    name: 'ssh-keys:host',
    usage: 'ssh-keys:host [--json]',
    summary: "print the SSH server's host key fingerprint and a known_hosts line",
    load: sshKeys,
  },
  {
    name: 'storage:mount',
    usage: 'storage:mount NAME VOLUME:/path | /host/dir:/path [--json]',
    summary:
      'mount a named volume or a host directory into every process of an app (from its next restart)',
    load: storage,
  },
  {
    name: 'storage:list',
    usage: 'storage:list NAME [--json]',
    summary: "list an app's mounts",
    load: storage,
  },
  {
    name: 'storage:unmount',
    usage: 'storage:unmount NAME /path | SOURCE:/path [--json]',
    summary: 'unmount a volume from an app (its data stays); from its next restart',
    load: storage,
  },
  {
    name: 'services:create',
    usage: 'services:create postgres|redis NAME [--image REF] [--json]',
    summary:
      "run a backing service (postgres 15 or redis 7 from Debian's packages) with its data on a volume",
    load: services,
  },
  {
    name: 'services:list',
    usage: 'services:list [--json]',
    summary: 'list backing services',
    load: services,
  },
  {
    name: 'services:info',
    usage: 'services:info NAME [--reveal] [--json]',
    summary: 'show a service: state, links, URL (password hidden unless --reveal)',
    load: services,
  },
  {
    name: 'services:link',
    usage: 'services:link NAME APP [--alias DATABASE] [--json]',
    summary: 'give an app the service: sets <ALIAS>_URL (DATABASE_URL, REDIS_URL) and redeploys',
    load: services,
  },
  {
    name: 'services:unlink',
    usage: 'services:unlink NAME APP [--json]',
    summary: 'take the service from an app: unsets its URL and redeploys',
    load: services,
  },
  {
    name: 'services:restart',
    usage: 'services:restart NAME [--json]',
    summary: "restart a service's container (its data stays)",
    load: services,
  },
  {
    name: 'services:destroy',
    usage: 'services:destroy NAME --force',
    summary: 'delete a service and its data (refused while an app is linked)',
    load: services,
  },
  {
    name: 'services:backup',
    usage: 'services:backup NAME > FILE',
    summary: 'write a consistent dump to stdout (pg_dump SQL, redis RDB) while apps keep serving',
    load: services,
  },
  {
    name: 'services:restore',
    usage: 'services:restore NAME < FILE',
    summary: 'load a dump made by services:backup into the service',
    load: services,
  },
  {
    name: 'buildpacks',
    usage: 'buildpacks [--json]',
    summary: 'list the buildpacks, in detection order',
    load: buildpacks,
  },
  {
    name: 'buildpacks:detect',
    usage: 'buildpacks:detect [DIR] [--buildpack NAME] [--dockerfile-only] [--json]',
    summary: 'show what DIR builds with, why, and the Dockerfile a buildpack renders',
    load: buildpacks,
  },
  {
    name: 'container:run',
    usage:
      'container:run [--rootfs DIR | --image REF] [--memory 64m] [--cpus 0.5] [--pids 64] [--net none|bridge] [--runtime native|runc] [--user U] [--env K=V]… [--workdir DIR] [--volume SRC:DST[:ro]]… [--data-dir DIR] -- CMD…',
    summary: 'run a container in the foreground without the daemon (debugging)',
    load: container,
  },
  {
    name: 'router',
    usage: 'router [--data-dir DIR] [--http-port 80] [--domain localhost] [--workers N]',
    summary: 'run the HTTP router process (the daemon starts it for you)',
    load: router,
  },
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

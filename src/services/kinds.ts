// What differs between service types: the image, where the data and the socket live in the
// container, how it starts (initialising its data dir on first start), how it is checked,
// the URL a link sets, and how its data is dumped and loaded.
//
// A service listens on a Unix socket only, never on TCP (its container has no network at
// all): the socket's directory is bind-mounted, read-only, into the containers of the apps
// linked to it and nowhere else, so reaching it takes a link, on any interface of the host.
import type { ServiceName, ServiceType } from './validate.ts';

/** Where a linked app's containers see a service's socket directory. */
export const LINK_MOUNT_DIR = '/run/paas-services';

export interface Kind {
  /** The image services:create runs (built by provision/base-images from Debian's packages). */
  image: string;
  /** In the container: the data volume and the socket directory. */
  dataDir: string;
  runDir: string;
  /** The config var prefix a link sets by default: `<alias>_URL`. */
  alias: string;
  env(password: string): Record<string, string>;
  command: string[];
  /** Exits 0 once the service answers on its socket. */
  health(password: string): string[];
  /** `<alias>_URL` for a linked app, whose containers see runDir at linkDir. */
  url(password: string, linkDir: string): string;
  /** A consistent dump on stdout, run in the service's container. */
  dump(password: string): string[];
  /** Loads a dump from stdin, run in the service's container. */
  load(password: string): string[];
  /** How an image with the official image's interface (`--image`) is run instead. */
  official: Official;
}

/**
 * The documented interface of the official postgres / redis images (hub.docker.com/_/postgres,
 * /_/redis), the only thing services:create --image relies on: the image's ENTRYPOINT
 * (`docker-entrypoint.sh`) given the server command and its options, the documented
 * environment, the data directory, and the image's own unprivileged user (both entrypoints
 * run the server as the container's user when started as that user: no chown, no gosu).
 */
export interface Official {
  user: string;
  env(password: string): Record<string, string>;
  /** What follows the image's ENTRYPOINT. */
  args: string[];
  /** A config file the service's conf directory holds, mounted read-only at `dir`. */
  conf?: { dir: string; file: string; text(password: string): string };
}

// initdb once, on the empty volume; scram-sha-256 for every connection, the socket included,
// since linked apps arrive through that same socket. listen_addresses='' : no TCP at all.
const PG_START = `set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\\n' "$POSTGRES_PASSWORD" > "$pw"
  initdb -D "$PGDATA" -U postgres --pwfile="$pw" -E UTF8 --locale=C.UTF-8 \\
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 > /dev/null
  rm -f "$pw"
  echo "paas: initialised $PGDATA"
fi
exec postgres -D "$PGDATA" -c listen_addresses= -c unix_socket_directories=/var/run/postgresql`;

// The password goes in a config file, not on the command line, where ps would show it.
const REDIS_START = `set -e
umask 077
printf 'requirepass "%s"\\n' "$REDIS_PASSWORD" > /tmp/redis.conf
exec redis-server /tmp/redis.conf --port 0 --unixsocket /run/redis/redis.sock \\
  --unixsocketperm 777 --dir /data --save "60 1" --appendonly no`;

export const KINDS: Record<ServiceType, Kind> = {
  postgres: {
    image: 'library/postgres:15',
    dataDir: '/var/lib/postgresql/data',
    runDir: '/var/run/postgresql',
    alias: 'DATABASE',
    env: (pw) => ({ POSTGRES_PASSWORD: pw }),
    command: ['sh', '-c', PG_START],
    health: () => ['pg_isready', '-q', '-h', '/var/run/postgresql', '-U', 'postgres'],
    // libpq and node-postgres take the socket directory as the `host` parameter.
    url: (pw, dir) => `postgres://postgres:${pw}@localhost/postgres?host=${dir}`,
    // Plain SQL with DROP … IF EXISTS first: restoring over live data replaces it.
    dump: (pw) => [
      'env',
      `PGPASSWORD=${pw}`,
      'pg_dump',
      '-h',
      '/var/run/postgresql',
      '-U',
      'postgres',
      '--clean',
      '--if-exists',
      'postgres',
    ],
    official: {
      user: 'postgres',
      // POSTGRES_INITDB_ARGS: password auth on the socket too, which is how linked apps come
      // in (the image's default trusts every local connection).
      env: (pw) => ({
        POSTGRES_PASSWORD: pw,
        POSTGRES_USER: 'postgres',
        POSTGRES_DB: 'postgres',
        PGDATA: '/var/lib/postgresql/data',
        POSTGRES_INITDB_ARGS: '--auth-local=scram-sha-256 --auth-host=scram-sha-256',
      }),
      // `docker run postgres -c …`: the socket only, no TCP (the container has no network).
      args: [
        'postgres',
        '-c',
        'listen_addresses=',
        '-c',
        'unix_socket_directories=/var/run/postgresql',
      ],
    },
    load: (pw) => [
      'env',
      `PGPASSWORD=${pw}`,
      'psql',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '--single-transaction',
      '-h',
      '/var/run/postgresql',
      '-U',
      'postgres',
      'postgres',
    ],
  },
  redis: {
    image: 'library/redis:7',
    dataDir: '/data',
    runDir: '/run/redis',
    alias: 'REDIS',
    env: (pw) => ({ REDIS_PASSWORD: pw }),
    command: ['sh', '-c', REDIS_START],
    health: (pw) => [
      'sh',
      '-c',
      `redis-cli --no-auth-warning -s /run/redis/redis.sock -a '${pw}' ping | grep -qx PONG`,
    ],
    // redis-rb's and Sidekiq's Unix-socket form.
    url: (pw, dir) => `unix://${dir}/redis.sock?password=${pw}`,
    dump: () => [],
    load: () => [],
    official: {
      user: 'redis',
      env: () => ({}),
      // The image's documented form `redis-server /usr/local/etc/redis/redis.conf`; a file,
      // not `--requirepass` on the command line, where any host user's ps would show it.
      args: ['redis-server', '/usr/local/etc/redis/redis.conf'],
      conf: {
        dir: '/usr/local/etc/redis',
        file: 'redis.conf',
        text: (pw) =>
          [
            `requirepass "${pw}"`,
            'port 0',
            'unixsocket /run/redis/redis.sock',
            'unixsocketperm 777',
            'dir /data',
            'save 60 1',
            'appendonly no',
            '',
          ].join('\n'),
      },
    },
  },
};

export function linkDir(name: ServiceName): string {
  return `${LINK_MOUNT_DIR}/${name}`;
}

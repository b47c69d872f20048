// A single-node Docker Swarm for the swarm scheduler's tests: a private dockerd
// (dockerd.ts) on a bridge of its own, `docker swarm init` on loopback. The bridge is what
// host-mode published ports need (dockerd.ts otherwise runs with none); its name and subnet
// are random so parallel runs do not meet. `swarm init` creates docker_gwbridge, a host-wide
// name: stop() removes it, so run one swarm test at a time.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { startDockerd, type Dockerd } from './dockerd.ts';

export interface Swarm {
  dockerd: Dockerd;
  /** The engine's unix socket, for the Engine API client. */
  socket: string;
  stop(): Promise<void>;
}

const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export async function startSwarm(): Promise<Swarm> {
  const bridge = `paassw${randomBytes(2).toString('hex')}`;
  // A MAC of its own: a bridge without one takes the lowest MAC of its ports, so it changes
  // whenever a task's container leaves, and the other containers' ARP entries for the
  // gateway go stale: their answers to the port proxy stall for seconds (a request through
  // the router hung at the end of each rolling update). Docker's own bridges set theirs.
  const mac = `02:${[...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  ip(['link', 'add', bridge, 'address', mac, 'type', 'bridge']);
  const removeBridge = () => {
    try {
      ip(['link', 'del', bridge]);
    } catch {
      // already gone
    }
  };
  let d: Dockerd;
  try {
    ip(['addr', 'add', `10.213.${randomInt(0, 256)}.1/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
    d = await startDockerd({ bridge });
  } catch (e) {
    removeBridge();
    throw e;
  }
  const stop = async () => {
    await d.stop();
    removeBridge();
    try {
      ip(['link', 'del', 'docker_gwbridge']);
    } catch {
      // not created
    }
  };
  const init = await d.docker([
    'swarm',
    'init',
    '--advertise-addr',
    '127.0.0.1',
    '--listen-addr',
    '127.0.0.1:0',
  ]);
  if (init.code !== 0) {
    await stop();
    throw new Error(`docker swarm init failed: ${init.stderr}\n${d.log().slice(-3000)}`);
  }
  const socket = (d.client.env.DOCKER_HOST ?? '').replace(/^unix:\/\//, '');
  return { dockerd: d, socket, stop };
}

// `--router node|haproxy`: the one place a plane is chosen; an unknown name fails loudly.
//
// Changing planes (a changed `--router`, or a new default) on a box whose other plane still
// serves is a handover: the new plane starts on the old one's table and ports, bound beside
// it (both listen with SO_REUSEPORT, so the kernel spreads new connections over both), the
// daemon gives it the certificates, and only then stops the old one, which drains what it
// holds (RouterLink.connect). A connection the kernel queued on the old listener in the
// instant it closes can still be reset: SO_REUSEPORT listeners share no queue.
import { routerAnswers } from './client.ts';
import { parsePlaneKind, type DataPlane, type PlaneConfig } from './data-plane.ts';
import { HaproxyPlane } from './haproxy/plane.ts';
import { NodePlane } from './node-plane.ts';

export function createDataPlane(kind: string, cfg: PlaneConfig): DataPlane {
  switch (parsePlaneKind(kind)) {
    case 'node':
      return new NodePlane(cfg, async () =>
        (await HaproxyPlane.running(cfg.dataDir)) ? new HaproxyPlane(cfg) : null,
      );
    case 'haproxy':
      return new HaproxyPlane(cfg, async () =>
        (await routerAnswers(cfg.dataDir)) ? new NodePlane(cfg) : null,
      );
  }
}

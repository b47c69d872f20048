// `--router node|haproxy`: the one place a plane is chosen; an unknown name fails loudly.
import { parsePlaneKind, type DataPlane, type PlaneConfig } from './data-plane.ts';
import { HaproxyPlane } from './haproxy/plane.ts';
import { NodePlane } from './node-plane.ts';

export function createDataPlane(kind: string, cfg: PlaneConfig): DataPlane {
  switch (parsePlaneKind(kind)) {
    case 'node':
      return new NodePlane(cfg);
    case 'haproxy':
      return new HaproxyPlane(cfg);
  }
}

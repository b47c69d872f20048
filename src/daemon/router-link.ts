// The daemon's handle on the data plane (src/router/data-plane.ts): started or adopted at
// daemon start, re-found on a failed call by the plane itself (it may have been restarted
// on its own).
import type { Backend, DataPlane, RouteTable } from '../router/index.ts';
import type { RouterPort } from '../deploy/index.ts';

export class RouterLink implements RouterPort {
  readonly plane: DataPlane;

  constructor(plane: DataPlane) {
    this.plane = plane;
  }

  connect(): Promise<{ started: boolean; pid: number }> {
    return this.plane.connect();
  }

  switch(app: string, backends: Backend[]): Promise<{ drained: boolean }> {
    return this.plane.switch(app, backends);
  }

  setRoutes(table: RouteTable): Promise<{ drained: boolean }> {
    return this.plane.setRoutes(table);
  }

  close(): void {
    this.plane.close();
  }
}

// `engines.node` → the base image's Node major. Base images exist for NODE_MAJORS (22, 24,
// 26; ARCHITECTURE.md); the newest major the range allows wins, as Heroku's resolver picks
// the newest satisfying release. No engines field means the current LTS.
import semver from 'semver';
import { BuildFailed } from '../../errors/index.ts';
import { NODE_MAJORS } from '../../registry/index.ts';

export const DEFAULT_NODE_MAJOR = 24;

export function nodeMajor(engines: unknown): { major: number; reason: string } {
  if (engines === undefined || engines === null)
    return {
      major: DEFAULT_NODE_MAJOR,
      reason: `no engines.node: Node ${DEFAULT_NODE_MAJOR} (LTS)`,
    };
  if (typeof engines !== 'string' || semver.validRange(engines) === null) {
    throw new BuildFailed(
      `package.json engines.node ${JSON.stringify(engines)} is not a semver range (try "24.x")`,
      { step: 'detect' },
    );
  }
  const supported = [...NODE_MAJORS].sort((a, b) => b - a);
  const major = supported.find((m) => semver.intersects(engines, `${m}.x`));
  if (major === undefined) {
    const eol = semver.intersects(engines, `<${Math.min(...NODE_MAJORS)}`);
    throw new BuildFailed(
      `package.json engines.node "${engines}" allows no supported Node major${eol ? ' (Node 20 and older are end-of-life)' : ''}; supported: ${[...NODE_MAJORS].join(', ')} — e.g. "engines": { "node": "24.x" }`,
      { step: 'detect', engines, supported: NODE_MAJORS },
    );
  }
  return { major, reason: `engines.node "${engines}": Node ${major}` };
}

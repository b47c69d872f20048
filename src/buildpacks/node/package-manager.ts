// Which package manager installs the app, read from its lockfile (Heroku's rule), and the
// commands that install all dependencies (for the build) and production ones (for the image).
// yarn and pnpm come through corepack, pinned by sha512 so corepack verifies the download
// without the registry's signing keys (corepack skips its signature check for hashed specs).
import { BuildFailed } from '../../errors/index.ts';
import type { AppFiles } from '../app.ts';

export type PackageManager = {
  name: 'npm' | 'yarn' | 'pnpm';
  lockfile: string | null;
  /** Files the dependency layer is keyed by: package.json, the lockfile, the manager's config. */
  manifests: string[];
  install: string;
  prodInstall: string;
  run: string;
  /** `name@version+sha512.<hex>` for corepack, or null for npm (shipped in the image). */
  corepack: string | null;
  /** Why this manager, for the build's opening lines. */
  reason: string;
};

// npm view <pkg>@<version> dist.integrity, as hex.
export const PINNED = {
  corepack: '0.34.6',
  yarn: 'yarn@1.22.22+sha512.a6b2f7906b721bba3d67d4aff083df04dad64c399707841b7acf00f6b133b7ac24255f2652fa22ae3534329dc6180534e98d17432037ff6fd140556e2bb3137e',
  pnpm: 'pnpm@10.34.8+sha512.f627a8e971343afe49dfd0f63d028234201dfa831d5cb588733e1e5f8db26bf16989a32161ab5c1b4db3b1fdbc373160606b5b89e002df6dd19a85adf91fc5a8',
} as const;

const NPM_FLAGS = '--no-audit --no-fund';

/** The package.json `packageManager` field ("pnpm@9.1.0[+sha…]"), when it names `name`. */
function declared(pkg: Record<string, unknown>, name: string, lockfile: string): string | null {
  const field = pkg.packageManager;
  if (typeof field !== 'string') return null;
  const used = field.split('@')[0];
  if (used !== name) {
    throw new BuildFailed(
      `package.json packageManager is "${field}" but the lockfile is ${lockfile} (${name}); commit the lockfile of the manager you use`,
      { step: 'detect' },
    );
  }
  return field;
}

export function packageManager(app: AppFiles, pkg: Record<string, unknown>): PackageManager {
  const extra = (files: string[]): string[] => files.filter((f) => app.isFile(f));
  for (const lock of ['package-lock.json', 'npm-shrinkwrap.json']) {
    if (app.isFile(lock)) {
      return {
        name: 'npm',
        lockfile: lock,
        manifests: ['package.json', lock, ...extra(['.npmrc'])],
        install: `npm ci ${NPM_FLAGS}`,
        prodInstall: `npm ci --omit=dev ${NPM_FLAGS}`,
        run: 'npm run',
        corepack: null,
        reason: `${lock}: npm ci`,
      };
    }
  }
  if (app.isFile('yarn.lock')) {
    const berry = /^__metadata:/m.test(app.read('yarn.lock') ?? '');
    const spec = declared(pkg, 'yarn', 'yarn.lock');
    if (berry && spec === null) {
      throw new BuildFailed(
        'yarn.lock is a Yarn 2+ lockfile but package.json has no "packageManager": run `yarn set version stable` and commit package.json',
        { step: 'detect' },
      );
    }
    const manifests = ['package.json', 'yarn.lock', ...extra(['.yarnrc', '.yarnrc.yml', '.npmrc'])];
    return berry
      ? {
          name: 'yarn',
          lockfile: 'yarn.lock',
          manifests,
          install: 'yarn install --immutable',
          prodInstall: 'yarn workspaces focus --all --production',
          run: 'yarn run',
          corepack: spec,
          reason: `yarn.lock (Yarn 2+, ${spec}) via corepack`,
        }
      : {
          name: 'yarn',
          lockfile: 'yarn.lock',
          manifests,
          install: 'yarn install --frozen-lockfile --non-interactive',
          prodInstall: 'yarn install --frozen-lockfile --non-interactive --production',
          run: 'yarn run',
          corepack: spec ?? PINNED.yarn,
          reason: `yarn.lock: ${(spec ?? PINNED.yarn).split('+')[0]} via corepack`,
        };
  }
  if (app.isFile('pnpm-lock.yaml')) {
    const spec = declared(pkg, 'pnpm', 'pnpm-lock.yaml') ?? PINNED.pnpm;
    return {
      name: 'pnpm',
      lockfile: 'pnpm-lock.yaml',
      manifests: ['package.json', 'pnpm-lock.yaml', ...extra(['pnpm-workspace.yaml', '.npmrc'])],
      install: 'pnpm install --frozen-lockfile',
      prodInstall: 'pnpm install --frozen-lockfile --prod',
      run: 'pnpm run',
      corepack: spec,
      reason: `pnpm-lock.yaml: ${spec.split('+')[0]} via corepack`,
    };
  }
  return {
    name: 'npm',
    lockfile: null,
    manifests: ['package.json', ...extra(['.npmrc'])],
    install: `npm install ${NPM_FLAGS}`,
    prodInstall: `npm install --omit=dev ${NPM_FLAGS}`,
    run: 'npm run',
    corepack: null,
    reason: 'no lockfile: npm install',
  };
}

/**
 * Whether the install may compile native modules (node-gyp needs python3, make, g++). npm's
 * lockfile (v2+) marks each package with install scripts; other lockfiles do not say, so
 * they get the toolchain.
 */
export function needsToolchain(
  app: AppFiles,
  pkg: Record<string, unknown>,
  pm: PackageManager,
): { toolchain: boolean; reason: string } {
  if (app.isFile('binding.gyp') || pkg.gypfile === true)
    return { toolchain: true, reason: 'the app has a binding.gyp' };
  if (pm.name !== 'npm' || pm.lockfile === null)
    return {
      toolchain: true,
      reason: `${pm.lockfile ?? 'no lockfile'}: cannot tell which packages compile`,
    };
  const lock = app.json(pm.lockfile) ?? {};
  const packages = lock.packages;
  if (typeof packages !== 'object' || packages === null)
    return { toolchain: true, reason: `${pm.lockfile} v1 does not mark install scripts` };
  const native = Object.entries(packages as Record<string, { hasInstallScript?: boolean }>)
    .filter(([, p]) => p.hasInstallScript === true)
    .map(([k]) => k.replace(/^.*node_modules\//, ''));
  return native.length > 0
    ? {
        toolchain: true,
        reason: `install scripts in ${native.slice(0, 3).join(', ')}${native.length > 3 ? '…' : ''}`,
      }
    : { toolchain: false, reason: `no package in ${pm.lockfile} has install scripts` };
}

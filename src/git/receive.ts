// What a push asks for, decided before any work: which ref deploys, which are only stored,
// and which are refused. Only `main` and `master` deploy (Heroku/Dokku); deleting them is
// refused because the live release would lose its source.
import type { AppName } from '../apps/index.ts';

export const ZERO_SHA = '0000000000000000000000000000000000000000';
export const DEPLOY_BRANCHES: readonly string[] = ['refs/heads/main', 'refs/heads/master'];

export interface RefUpdate {
  oldSha: string;
  newSha: string;
  ref: string;
}

export interface ReceivedPush {
  app: AppName;
  gitDir: string;
  refs: RefUpdate[];
  /** Where git keeps the pushed objects until the hook accepts them (git's quarantine). */
  gitEnv: Record<string, string>;
}

export type PushPlan =
  | { kind: 'refuse'; reason: string }
  | { kind: 'store'; refs: RefUpdate[] }
  | { kind: 'deploy'; ref: RefUpdate; others: RefUpdate[] };

const SHA = /^[0-9a-f]{40}$/;

export function planPush(refs: readonly RefUpdate[]): PushPlan {
  if (refs.length === 0) return { kind: 'refuse', reason: 'nothing to push' };
  for (const r of refs) {
    if (!SHA.test(r.oldSha) || !SHA.test(r.newSha) || !r.ref.startsWith('refs/'))
      return { kind: 'refuse', reason: `malformed ref update for ${r.ref}` };
    if (DEPLOY_BRANCHES.includes(r.ref) && r.newSha === ZERO_SHA) {
      return {
        kind: 'refuse',
        reason: `deleting ${r.ref.slice('refs/heads/'.length)} is not allowed: it is the branch that deploys`,
      };
    }
  }
  const deploys = refs.filter((r) => DEPLOY_BRANCHES.includes(r.ref));
  if (deploys.length > 1)
    return { kind: 'refuse', reason: 'push main or master, not both at once' };
  const ref = deploys[0];
  if (ref === undefined) return { kind: 'store', refs: [...refs] };
  return { kind: 'deploy', ref, others: refs.filter((r) => r !== ref) };
}

export function branchName(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, '');
}

// Public surface of git receive: the HTTP handler, the hook socket, push planning and checkout.
export { createGitHttpHandler, isGitRequest, type GitHttpOptions } from './http.ts';
export { listenHookSocket, type PushHandler, type PushOutput } from './hookserver.ts';
export {
  planPush,
  branchName,
  ZERO_SHA,
  DEPLOY_BRANCHES,
  type PushPlan,
  type ReceivedPush,
  type RefUpdate,
} from './receive.ts';
export { checkoutCommit } from './checkout.ts';
export { ensureRepo, removeRepo, repoPath, type RepoOptions } from './repos.ts';

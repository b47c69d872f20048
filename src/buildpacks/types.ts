// The one interface every buildpack implements (STYLE.md §3): detect says whether (and why)
// it applies to an app's files; plan turns those files into the inputs of its Dockerfile
// template. The contract suite (contract.case.ts) holds each buildpack to it.
import type { NodeReleases } from '../baseimages/index.ts';
import type { AppFiles } from './app.ts';

export type BuildpackName = 'node' | 'static' | 'procfile';

export interface Plan {
  /** Inputs of the buildpack's Dockerfile.hbs (strict: every name used must be here). */
  inputs: Record<string, unknown>;
  /** Process types and their command lines, when the buildpack knows them. */
  processTypes: Record<string, string>;
  /** Lines worth a pusher's attention (a missing lockfile…), printed before the build. */
  warnings: string[];
  /** Files the build context needs beside the app's (path relative to the context → contents). */
  files: Record<string, string>;
}

/** What a plan may consult beyond the app's files (fetched by the caller, so plans stay pure). */
export interface PlanContext {
  /** Node releases engines.node picks from (default: the versions pinned on this box). */
  nodeReleases?: NodeReleases;
  /** The date end-of-life is judged at (default: now). */
  now?: Date;
}

export interface Buildpack {
  readonly name: BuildpackName;
  readonly summary: string;
  /** Why this buildpack applies to the app, or null when it does not. */
  detect(app: AppFiles): string | null;
  /** Throws a PaasError (BuildFailed, step "detect") when the app cannot be built as is. */
  plan(app: AppFiles, ctx?: PlanContext): Plan;
  /** Renders the Dockerfile from the plan's inputs. */
  render(inputs: Record<string, unknown>): string;
}

/** What detection chose: the app's own Dockerfile, or a buildpack with its rendered Dockerfile. */
export type BuildChoice =
  | {
      kind: 'dockerfile';
      buildpack: null;
      reason: string;
      dockerfile: null;
      processTypes: null;
      warnings: string[];
      files: Record<string, string>;
    }
  | {
      kind: 'buildpack';
      buildpack: BuildpackName;
      reason: string;
      dockerfile: string;
      processTypes: Record<string, string>;
      warnings: string[];
      files: Record<string, string>;
    };

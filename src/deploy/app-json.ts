// app.json, read once at build time into the parts the platform acts on (Dokku's and
// Heroku's fields): scripts.dokku.predeploy/postdeploy, Heroku's scripts.postdeploy,
// formation, healthchecks (checked later by health.ts) and stop_grace_period. Everything
// else in the file is the app's own business and ignored.
import { parseFormationEntry, type AppJson } from '../apps/index.ts';
import { AppFiles } from '../buildpacks/index.ts';
import { BuildFailed, InvalidArgument } from '../errors/index.ts';

function fail(message: string): never {
  throw new BuildFailed(`app.json ${message}`, { step: 'release', file: 'app.json' });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A script: absent, or a command line for /bin/sh -c. */
function script(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(`${name} must be a command line (a string)`);
  return v.trim() === '' ? undefined : v;
}

/** `formation: { web: { quantity: 2 } }` (Heroku's shape), each entry by the ps:scale rule. */
function formation(v: unknown): Record<string, number> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) fail('formation must be an object of process type → { "quantity": N }');
  const out: Record<string, number> = {};
  for (const [type, entry] of Object.entries(v)) {
    if (!isObject(entry) || entry.quantity === undefined) continue; // size only: nothing to scale
    try {
      const [t, n] = parseFormationEntry(type, entry.quantity);
      out[t] = n;
    } catch (e) {
      if (e instanceof InvalidArgument) fail(`formation: ${e.message}`);
      throw e;
    }
  }
  return out;
}

export function readAppJson(dir: string): AppJson {
  // Read beneath the checkout: an app.json symlinked to a host file reads as absent.
  const text = new AppFiles(dir).read('app.json');
  if (text === null) return {};
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    fail(`is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(j)) fail('must hold a JSON object');
  const out: AppJson = {};
  const scripts = isObject(j.scripts) ? j.scripts : {};
  const dokku = isObject(scripts.dokku) ? scripts.dokku : {};
  const pre = script(dokku.predeploy, 'scripts.dokku.predeploy');
  if (pre !== undefined) out.predeploy = pre;
  const post = script(dokku.postdeploy, 'scripts.dokku.postdeploy');
  if (post !== undefined) out.postdeploy = post;
  const first = script(scripts.postdeploy, 'scripts.postdeploy');
  if (first !== undefined) out.firstPostdeploy = first;
  const f = formation(j.formation);
  if (f !== undefined && Object.keys(f).length > 0) out.formation = f;
  if (j.healthchecks !== undefined) out.healthchecks = j.healthchecks;
  const grace = j.stop_grace_period;
  if (grace !== undefined) {
    if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0 || grace > 3600)
      fail('stop_grace_period must be a number of seconds (0–3600)');
    out.stopGraceSeconds = grace;
  }
  return out;
}

// The static buildpack: a site of plain files (static.json, or an index.html with no
// package.json). static.json follows Heroku's static buildpack: `root`, `clean_urls`,
// `error_page`. The server (server.mjs beside this file) is copied into the build context
// and the image; it indexes the site at start and serves it on $PORT.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BuildFailed } from '../../errors/index.ts';
import { loadTemplate } from '../render.ts';
import type { Buildpack, Plan } from '../types.ts';

const template = loadTemplate(new URL('./Dockerfile.hbs', import.meta.url));
const SERVER = readFileSync(new URL('./server.mjs', import.meta.url), 'utf8');
export const SERVER_FILE = '.paas-buildpack/static-server.mjs';
const KNOWN_KEYS = new Set(['root', 'clean_urls', 'error_page']);
/** Repository files that configure the deploy, never content, when the root is the repository. */
const HIDDEN_AT_ROOT = ['static.json', 'Procfile', 'app.json', 'Dockerfile', 'README.md'];

function fail(message: string): never {
  throw new BuildFailed(`static.json: ${message}`, { step: 'detect', file: 'static.json' });
}

export const staticSite: Buildpack = {
  name: 'static',
  summary:
    'static sites (static.json, or index.html without package.json): clean URLs, 404 page, cache headers',
  detect(app) {
    if (app.isFile('static.json')) return 'static.json found';
    if (app.isFile('index.html') && !app.isFile('package.json'))
      return 'index.html found and no package.json';
    return null;
  },
  plan(app): Plan {
    const cfg = app.json('static.json') ?? {};
    const warnings = Object.keys(cfg)
      .filter((k) => !KNOWN_KEYS.has(k))
      .map(
        (k) =>
          `static.json: "${k}" is not supported here and is ignored (supported: ${[...KNOWN_KEYS].join(', ')})`,
      );
    const rawRoot = cfg.root ?? '.';
    if (typeof rawRoot !== 'string') fail('"root" must be a string path');
    const root = path.posix.normalize(rawRoot.replace(/\/+$/, '') || '.');
    if (path.posix.isAbsolute(root) || root === '..' || root.startsWith('../'))
      fail(`"root" must be a directory inside the repository, not "${rawRoot}"`);
    if (!app.isDir(root)) fail(`"root" is "${rawRoot}" but there is no such directory`);
    if (cfg.clean_urls !== undefined && typeof cfg.clean_urls !== 'boolean')
      fail('"clean_urls" must be true or false');
    const cleanUrls = cfg.clean_urls !== false;
    let errorPage = '';
    if (cfg.error_page !== undefined) {
      if (typeof cfg.error_page !== 'string' || cfg.error_page.includes('..'))
        fail('"error_page" must be a file name inside the root');
      if (!app.isFile(path.posix.join(root, cfg.error_page)))
        fail(
          `"error_page" is "${cfg.error_page}" but ${path.posix.join(root, cfg.error_page)} does not exist`,
        );
      errorPage = cfg.error_page;
    } else if (app.isFile(path.posix.join(root, '404.html'))) {
      errorPage = '404.html';
    }
    if (!app.isFile(path.posix.join(root, 'index.html')))
      warnings.push(`${path.posix.join(root, 'index.html')} does not exist: / will answer 404`);
    return {
      inputs: {
        root: root === '.' ? 'the repository root' : `${root}/`,
        copySource: root === '.' ? '.' : `${root}/`,
        cleanUrls: cleanUrls ? 'on' : 'off',
        cleanUrlsFlag: cleanUrls ? '1' : '0',
        errorPage,
        errorPageLabel: errorPage === '' ? 'none' : errorPage,
        hide: root === '.' ? HIDDEN_AT_ROOT.join(',') : '',
        serverFile: SERVER_FILE,
      },
      processTypes: { web: 'node /opt/paas/static-server.mjs' },
      warnings,
      files: { [SERVER_FILE]: SERVER },
    };
  },
  render: template,
};

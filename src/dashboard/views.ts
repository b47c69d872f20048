// Handlebars views: each page is a template in views/ rendered inside layout.hbs. Handlebars
// HTML-escapes every `{{value}}`; no template uses the unescaped `{{{…}}}` form except the
// layout for the already-rendered page body.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Handlebars from 'handlebars';

const dir = new URL('./views/', import.meta.url);

// Made at the first page rendered, not at import: an idle daemon holds no template engine.
let hbsInstance: typeof Handlebars | undefined;
function handlebars(): typeof Handlebars {
  if (hbsInstance !== undefined) return hbsInstance;
  const hbs = (createRequire(import.meta.url)('handlebars') as typeof Handlebars).create();
  hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hbs.registerHelper('short', (s: unknown, n: unknown) =>
    typeof s === 'string' ? s.slice(0, typeof n === 'number' ? n : 7) : '',
  );
  // "2025-01-02T03:04:05.678Z" → "2025-01-02 03:04:05" (UTC, as the CLI prints).
  hbs.registerHelper('time', (s: unknown) =>
    typeof s === 'string' ? s.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '',
  );
  for (const f of readdirSync(dir)) {
    if (f.startsWith('_') && f.endsWith('.hbs'))
      hbs.registerPartial(f.slice(1, -4), readFileSync(new URL(f, dir), 'utf8'));
  }
  return (hbsInstance = hbs);
}

const cache = new Map<string, Handlebars.TemplateDelegate>();
function template(name: string): Handlebars.TemplateDelegate {
  let t = cache.get(name);
  if (t === undefined) {
    t = handlebars().compile(readFileSync(new URL(`${name}.hbs`, dir), 'utf8'));
    cache.set(name, t);
  }
  return t;
}

export interface LayoutData {
  title: string;
  /** Set when logged in: the nav shows the logout form with this CSRF token. */
  csrf?: string;
  flash?: { kind: 'ok' | 'error'; text: string } | null;
}

export function render(view: string, layout: LayoutData, data: Record<string, unknown>): string {
  const body = template(view)({ ...data, csrf: layout.csrf });
  return template('layout')({ ...layout, body });
}

// Dockerfile templates: handlebars in strict mode (a missing input is an error, not an empty
// string) with escaping off (a Dockerfile is not HTML: `&&` must stay `&&`).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Handlebars from 'handlebars';

// Made at the first render (a build), not at import: an idle daemon holds no template engine.
let hbsInstance: typeof Handlebars | undefined;
function handlebars(): typeof Handlebars {
  if (hbsInstance !== undefined) return hbsInstance;
  const hbs = (createRequire(import.meta.url)('handlebars') as typeof Handlebars).create();
  // JSON-array (exec form) arguments: CMD {{json cmd}} → CMD ["node","server.js"].
  hbs.registerHelper('json', (v: unknown) => JSON.stringify(v));
  return (hbsInstance = hbs);
}

export type Template = (inputs: Record<string, unknown>) => string;

/** Compiles a template file that sits beside a buildpack's code (`new URL('./Dockerfile.hbs', import.meta.url)`). */
export function loadTemplate(file: URL): Template {
  const text = readFileSync(file, 'utf8');
  let compiled: Handlebars.TemplateDelegate | undefined;
  // Blank lines left by {{#if}} blocks are collapsed so the output reads like a hand-written file.
  return (inputs) =>
    `${(compiled ??= handlebars().compile(text, { strict: true, noEscape: true }))(inputs)
      .replace(/\n{3,}/g, '\n\n')
      .trim()}\n`;
}

/**
 * The user a rendered Dockerfile runs the app as. It owns the app's directory (COPY --chown,
 * chown of the WORKDIR), so changing the user here moves the ownership with it.
 */
export const APP_USER = 'app';

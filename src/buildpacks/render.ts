// Dockerfile templates: handlebars in strict mode (a missing input is an error, not an empty
// string) with escaping off (a Dockerfile is not HTML: `&&` must stay `&&`).
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';

const hbs = Handlebars.create();
// JSON-array (exec form) arguments: CMD {{json cmd}} → CMD ["node","server.js"].
hbs.registerHelper('json', (v: unknown) => JSON.stringify(v));

export type Template = (inputs: Record<string, unknown>) => string;

/** Compiles a template file that sits beside a buildpack's code (`new URL('./Dockerfile.hbs', import.meta.url)`). */
export function loadTemplate(file: URL): Template {
  const compiled = hbs.compile(readFileSync(file, 'utf8'), { strict: true, noEscape: true });
  // Blank lines left by {{#if}} blocks are collapsed so the output reads like a hand-written file.
  return (inputs) =>
    `${compiled(inputs)
      .replace(/\n{3,}/g, '\n\n')
      .trim()}\n`;
}

/**
 * The user a rendered Dockerfile runs the app as. It owns the app's directory (COPY --chown,
 * chown of the WORKDIR), so changing the user here moves the ownership with it.
 */
export const APP_USER = 'app';

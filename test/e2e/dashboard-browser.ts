// Headless Debian Chromium driven by playwright-core, for the dashboard tests: a fresh
// profile per launch (Playwright makes one), screenshots under test-artifacts/dashboard/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO } from '../helpers/host.ts';

export const ARTIFACTS = join(REPO, 'test-artifacts', 'dashboard');

/** `extraArgs`: more Chromium switches (e.g. `--host-resolver-rules=MAP *.test 127.0.0.1`). */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

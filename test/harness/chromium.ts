// A headless Chromium page for the tests that check an HTML page as a browser lays it out (the
// report): Debian's Chromium, driven by playwright-core, with a fresh profile the test removes.
import type { TestContext } from 'node:test';
import type { Page } from 'playwright-core';
import { CHROMIUM, ensureSystem } from '../../dev/servers/system-packages.ts';
import { tempDir } from './temp-dir.ts';

/** Runs `use` with a new page of a headless Chromium, closed afterwards whatever happens. */
export async function withChromiumPage<T>(t: TestContext, use: (page: Page) => Promise<T>): Promise<T> {
  await ensureSystem(CHROMIUM);
  const { chromium } = await import('playwright-core');
  const profile = await tempDir('etl-chromium-profile-', t);
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    return await use(await browser.newPage());
  } finally {
    await browser.close();
  }
}

// Signs in at oidc-provider in a real headless Chromium, driven by
// playwright-core, the way a person would: it opens the authorization URL,
// types a login and password, clicks through consent, and follows the
// redirect to the client's loopback listener.
//
// Usage: node browser.js AUTH_URL LOGIN SCREENSHOT.png
// Prints one JSON line: {"url": final URL, "title", "status": text of
// #status, "message": text of #message, "text": body text}.
//
// Chromium is Debian's /usr/bin/chromium (override with $CHROMIUM), with a
// fresh profile and the flags that keep it from reaching the network on
// its own, plus a resolver rule and a request filter that let only
// 127.0.0.1 through.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [authURL, login, screenshot] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'mailoauth-chromium-'));

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // oidc-provider's pages @import a web font: resolve nothing but
    // loopback, so no request can leave the machine.
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  ],
  timeout: 60000,
});
// Second guard: abort every request that is not to 127.0.0.1.
await context.route('**/*', (route) => {
  const { hostname, protocol } = new URL(route.request().url());
  if (hostname === '127.0.0.1' && protocol === 'http:') return route.continue();
  process.stderr.write(`blocked ${protocol}//${hostname}\n`);
  return route.abort('blockedbyclient');
});
try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(authURL);
  // Login, then consent, then the client's page.
  for (let i = 0; i < 5; i += 1) {
    await page.waitForLoadState('load');
    if (await page.locator('input[name=login]').count()) {
      await page.fill('input[name=login]', login);
      await page.fill('input[name=password]', 'any password');
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } else if (await page.locator('input[name=prompt][value=consent]').count()) {
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } else {
      break;
    }
  }
  await page.waitForSelector('#status');
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  const text = async (sel) => ((await page.locator(sel).count()) ? (await page.locator(sel).first().innerText()) : '');
  process.stdout.write(`${JSON.stringify({
    url: page.url(),
    title: await page.title(),
    status: await text('#status'),
    message: await text('#message'),
    text: await text('body'),
  })}\n`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

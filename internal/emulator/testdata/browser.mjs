// Walks the emulator's HTML pages in a real headless Chromium, driven by
// playwright-core, the way a person would: it opens URL, types the device
// code when asked, signs in with LOGIN and PASSWORD, presses the primary
// button of the consent, "are you trying to sign in" and MFA pages, and
// stops on any other page (the client's redirect target or a message).
//
// Usage: node browser.mjs URL LOGIN PASSWORD [CODE]
// Prints one JSON line: {"url": final URL, "title", "text": body text,
// "steps": [page ids seen]}.
//
// playwright-core comes from the npm folder of internal/testenv/oidcprovider
// ($PLAYWRIGHT_DIR), installed by .ci/setup.d/30-oidc-provider.sh. Chromium
// is Debian's /usr/bin/chromium (override with $CHROMIUM). Every request to
// anything but 127.0.0.1 is refused. The emulator's CA is new on every run,
// so TLS errors are ignored for 127.0.0.1 only (the CA is tested elsewhere).
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(join(process.env.PLAYWRIGHT_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const [url, login, password, code] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'mailoauth-emulator-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  ],
  timeout: 60000,
});
await context.route('**/*', (route) => {
  const { hostname } = new URL(route.request().url());
  if (hostname === '127.0.0.1') return route.continue();
  process.stderr.write(`blocked ${hostname}\n`);
  return route.abort('blockedbyclient');
});
const steps = [];
try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(url);
  const has = async (sel) => (await page.locator(sel).count()) > 0;
  const submit = async (sel) => Promise.all([page.waitForNavigation(), page.click(sel)]);
  for (let i = 0; i < 8; i += 1) {
    await page.waitForLoadState('load');
    if (await has('#otc')) {
      steps.push('code');
      await page.fill('#otc', code);
      await submit('#devicecode-submit');
    } else if (await has('#signin')) {
      steps.push('signin');
      await page.fill('#login', login);
      await page.fill('#passwd', password);
      await submit('#signin-submit');
    } else if (await has('#consent-accept')) {
      steps.push('consent');
      await submit('#consent-accept');
    } else if (await has('#mfa-approve')) {
      steps.push('mfa');
      await submit('#mfa-approve');
    } else {
      break;
    }
  }
  process.stdout.write(`${JSON.stringify({
    url: page.url(), title: await page.title(), text: await page.locator('body').innerText(), steps,
  })}\n`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { PROJECT_ROOT } from '../../lib/util/paths.js';
import { removeDir, tempDir } from './temp.js';

// A real browser for the web page's specs: Debian's headless Chromium (`apt-get install
// chromium-headless-shell`, which .ci/run does), driven by playwright-core, with a fresh profile
// each time and nothing that reaches the network on its own.

const CANDIDATES = ['/usr/bin/chromium-headless-shell', '/usr/lib/chromium/chrome-headless-shell', '/usr/bin/chromium', '/usr/bin/chromium-browser'];
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];

export function chromiumPath(): string | null {
  const fromEnv = process.env.JM_CHROMIUM;
  if (fromEnv) return fromEnv;
  return CANDIDATES.find((path) => existsSync(path)) ?? null;
}

export class Browser {
  private constructor(
    readonly context: BrowserContext,
    private readonly profile: string,
  ) {}

  static async launch(): Promise<Browser> {
    const executablePath = chromiumPath();
    if (!executablePath) throw new Error('no Chromium found: apt-get install -y chromium-headless-shell (or set JM_CHROMIUM)');
    const profile = tempDir('jm-chromium-');
    const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: ARGS, viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(20_000);
    return new Browser(context, profile);
  }

  async page(): Promise<Page> {
    return this.context.newPage();
  }

  async close(): Promise<void> {
    await this.context.close();
    removeDir(this.profile);
  }
}

/**
 * Where screenshots go: JM_SCREENSHOTS (`npm run screenshots` sets docs/screenshots, the ones the
 * README shows), else a temporary directory, so that a test run leaves the working tree alone.
 */
export function screenshotDir(): string {
  const dir = process.env.JM_SCREENSHOTS ? resolve(PROJECT_ROOT, process.env.JM_SCREENSHOTS) : join(tempDir('jm-shots-'));
  mkdirSync(dir, { recursive: true });
  return dir;
}

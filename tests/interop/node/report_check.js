// Loads a protolab HTML report in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core; no browser is downloaded) and prints what a reader would meet, as
// one JSON object: every console message and page error, every request that was not
// file://, each chart's rendered size, the rows of each table, and what clicking a
// column header did to a table's order. tests/report/test_html_report.py asserts on it.
//
// usage: node report_check.js REPORT.html SCREENSHOT.png TABLE_ID HEADER_TEXT
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { pathToFileURL } = require('url');
const { chromium } = require('playwright-core');

const [report, screenshot, tableId, headerText] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

async function rowOrder(page, id) {
  return page.$$eval(`#${id} tbody tr`, (rows) => rows.map((r) => r.getAttribute('data-row')));
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'protolab-chromium-'));
  const result = { console: [], pageErrors: [], requests: [], foreign: [], failed: [] };
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 900 },
    });
    const page = await context.newPage();
    page.on('console', (msg) => result.console.push({ type: msg.type(), text: msg.text() }));
    page.on('pageerror', (err) => result.pageErrors.push(String(err)));
    page.on('request', (req) => {
      result.requests.push(req.url());
      if (!req.url().startsWith('file://')) { result.foreign.push(req.url()); }
    });
    page.on('requestfailed', (req) => result.failed.push(req.url()));
    await page.goto(pathToFileURL(path.resolve(report)).href, { waitUntil: 'load' });
    result.title = await page.title();
    result.charts = await page.$$eval('figure.chart', (figures) => figures.map((f) => {
      const svg = f.querySelector('svg');
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      return { id: f.id, kind: f.getAttribute('data-kind'), width: box.width,
        height: box.height, title: (f.querySelector('h4') || {}).textContent || '',
        caption: (f.querySelector('figcaption') || {}).textContent || '' };
    }));
    result.tables = await page.$$eval('table.sortable', (tables) => Object.fromEntries(
      tables.map((t) => [t.id, t.tBodies[0].rows.length])));
    result.headers = await page.$$eval('table.sortable', (tables) => Object.fromEntries(
      tables.map((t) => [t.id, Array.from(t.tHead.rows[0].cells, (c) => c.textContent)])));
    // Sorting: click the header, read the order and the column's keys; click again.
    const column = (await page.$$eval(`#${tableId} thead th`, (ths) => ths.map(
      (th) => th.textContent))).indexOf(headerText);
    result.sort = { column, before: await rowOrder(page, tableId) };
    if (column >= 0) {
      const header = page.locator(`#${tableId} thead th`).nth(column);
      const keys = () => page.$$eval(`#${tableId} tbody tr`, (rows, col) => rows.map((r) => {
        const cell = r.cells[col];
        return cell.hasAttribute('data-v') ? cell.getAttribute('data-v') : cell.textContent;
      }), column);
      await header.click();
      result.sort.ascending = { order: await rowOrder(page, tableId), keys: await keys(),
        ariaSort: await header.getAttribute('aria-sort') };
      await header.click();
      result.sort.descending = { order: await rowOrder(page, tableId), keys: await keys(),
        ariaSort: await header.getAttribute('aria-sort') };
    }
    // Clicking scrolled the wide table sideways: back to its start for the screenshot.
    await page.$$eval('.scroll', (boxes) => boxes.forEach((b) => { b.scrollLeft = 0; }));
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    if (context) { await context.close(); }
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });

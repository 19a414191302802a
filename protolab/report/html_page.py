"""The HTML report's style sheet and its one script, inlined into every report.

The script makes every `table.sortable` sortable: click (or Enter on) a header to sort by
that column, again to reverse. A cell's `data-v` is its sort key when it has one (the
exact number behind a rounded one; empty for "-", which sorts last); columns whose
header says `data-type="num"` compare as numbers. No library: forty lines do it, and a
report then needs no script from anywhere.
"""

from __future__ import annotations

PAGE_STYLE = """
:root { --bad: #c0392b; --good: #1e8449; --warn: #b7950b; --line: #d5d8dc; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1b1f23; background: #fff; }
header { background: #1f3a5f; color: #fff; padding: 16px 24px; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header .meta { margin: 0; opacity: .85; }
header nav ul { list-style: none; padding: 0; margin: 8px 0 0; display: flex; gap: 16px;
  flex-wrap: wrap; }
header a { color: #cfe3ff; }
main { padding: 8px 24px 40px; max-width: 1500px; }
h2 { border-bottom: 2px solid #1f3a5f; padding-bottom: 4px; margin-top: 32px; }
h3 { margin-top: 24px; }
h4 { margin: 0 0 6px; font-size: 15px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
caption { caption-side: top; text-align: left; padding: 4px 0 8px; color: #444;
  max-width: 1100px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; vertical-align: top; }
thead th { background: #eef2f7; position: sticky; top: 0; cursor: pointer;
  white-space: nowrap; user-select: none; }
thead th::after { content: " \\2195"; color: #98a2ad; font-size: 11px; }
thead th[aria-sort="ascending"]::after { content: " \\25B2"; color: #1f3a5f; }
thead th[aria-sort="descending"]::after { content: " \\25BC"; color: #1f3a5f; }
table.kv th { text-align: left; background: #f6f8fa; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.notes { min-width: 220px; }
td.host { white-space: nowrap; }
td.bad, .bad { color: var(--bad); font-weight: 600; }
td.good { color: var(--good); font-weight: 600; }
tr.worse td { background: #fdecea; }
tr.better td { background: #eafaf1; }
.verdict, .change, .status { padding: 1px 6px; border-radius: 3px; font-weight: 600; }
.verdict.holds, .change.better, .status-ok, .status-complete { background: #d5f5e3;
  color: var(--good); }
.verdict.refuted, .change.worse { background: #fadbd8; color: var(--bad); }
.verdict.inconclusive { background: #fcf3cf; color: var(--warn); }
.status-failed, .status-timeout, .status-interrupted { background: #fadbd8; color: var(--bad); }
.change.same { background: #eef2f7; color: #555; }
.note { color: #666; font-size: 12px; }
figure.chart { margin: 16px 0 28px; padding: 12px; border: 1px solid var(--line);
  border-radius: 4px; max-width: 1000px; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
figure.chart svg * { stroke-linejoin: round; stroke-linecap: butt; }
figcaption { color: #333; margin-top: 8px; max-width: 900px; }
details summary { cursor: pointer; font-weight: 600; margin: 12px 0 4px; }
p.files a { font-family: ui-monospace, monospace; }
p.warning { background: #fcf3cf; color: #6e5a00; border-left: 4px solid var(--warn);
  padding: 6px 10px; margin: 8px 0; font-weight: 600; }
header p.warning { margin: 10px 0 0; }
"""

PAGE_SCRIPT = """
(function () {
  'use strict';
  function key(row, col) {
    var cell = row.cells[col];
    if (!cell) { return ''; }
    return cell.hasAttribute('data-v') ? cell.getAttribute('data-v') : cell.textContent.trim();
  }
  function compare(a, b, numeric) {
    if (numeric) {
      var x = a === '' ? NaN : Number(a), y = b === '' ? NaN : Number(b);
      if (isNaN(x) || isNaN(y)) { return isNaN(x) === isNaN(y) ? 0 : (isNaN(x) ? 1 : -1); }
      return x - y;
    }
    if (a === '' || b === '') { return a === b ? 0 : (a === '' ? 1 : -1); }
    return a.localeCompare(b, undefined, { numeric: true });
  }
  function sortBy(table, th, col) {
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute('aria-sort'); }
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    var numeric = th.getAttribute('data-type') === 'num';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var a = key(r1, col), b = key(r2, col);
      var missing = (a === '') !== (b === '');
      var order = compare(a, b, numeric);
      return missing || ascending ? order : -order;  /* missing values stay last */
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  var tables = document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortBy(table, th, col); });
      th.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          sortBy(table, th, col);
        }
      });
    });
  });
}());
"""

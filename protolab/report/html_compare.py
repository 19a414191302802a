"""The comparison section of the HTML report: per cell both runs share, B's median over
A's with its bootstrap CI (as `results compare` prints it), marked worse or better when
the whole CI lies on one side of 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from protolab.report.html_data import Comparison, RunSection
from protolab.report.html_markup import (
    LINK_UNITS,
    esc,
    link_sort_key,
    num_td,
    sortable_table,
    td,
)


def _ratio_cells(phase: Any) -> tuple[list[str], str]:
    """A, B, B/A and its CI of one phase; and whether B got worse, better or neither."""
    ratio = phase.ratio
    change = "same"
    if ratio is not None and ratio.ci_low > 1:
        change = "worse"
    elif ratio is not None and ratio.ci_high < 1:
        change = "better"
    cls = {"worse": "num bad", "better": "num good", "same": "num"}[change]
    cells = [num_td(phase.a_ms), num_td(phase.b_ms),
             num_td(ratio.value if ratio else None, 3, cls),
             td("-" if ratio is None else f"{ratio.ci_low:.3f} – {ratio.ci_high:.3f}",
                "" if ratio is None else repr(ratio.ci_low), cls)]
    return cells, change


def comparison_html(sections: Sequence[RunSection],
                    comparisons: Sequence[Comparison]) -> str:
    suites = {s.info.id: s.info.suite for s in sections}
    parts = ['<section id="compare"><h2>Comparison: B / A per shared cell</h2>']
    for comp in comparisons:
        links = [row.params.get("link", {}) for row in comp.rows]
        link_list = [link if isinstance(link, dict) else {} for link in links]
        keys = list(dict.fromkeys(k for link in link_list for k in link))
        swept = [k for k in keys if len({str(link.get(k, "-")) for link in link_list}) > 1]
        headers: list[tuple[str, str, str]] = [("variant", "text", "")]
        headers += [(f"{k} ({LINK_UNITS.get(k, 'as given')})", "text", "") for k in swept]
        headers += [("n A / B", "text", "successful samples of each run")]
        for phase in ("TTFB", "total"):
            headers += [(f"{phase} A (ms)", "num", f"run {comp.a}'s median"),
                        (f"{phase} B (ms)", "num", f"run {comp.b}'s median"),
                        (f"{phase} B/A", "num", "ratio of the medians; above 1: B slower"),
                        (f"{phase} B/A 95% CI", "num", "bootstrap CI of the ratio")]
        headers.append(("change", "text", "worse: a ratio's whole CI above 1"))
        machines = any(row.hosts_differ for row in comp.rows)
        if machines:
            headers.append(("machines", "text", "what differs between the machines that ran "
                            "the cell in A and in B"))
        rows = []
        worse = 0
        for i, (row, link) in enumerate(zip(comp.rows, link_list, strict=True)):
            ttfb, ttfb_change = _ratio_cells(row.ttfb)
            total, total_change = _ratio_cells(row.total)
            changes = {ttfb_change, total_change}
            change = "worse" if "worse" in changes else "better" if "better" in changes \
                else "same"
            worse += change == "worse"
            label = str(row.params.get("label") or row.params.get("protocol")
                        or json.dumps(row.params))
            rows.append(
                f'<tr data-row="{i}" class="{change}">' + td(esc(label))
                + "".join(td(esc(link.get(k, "-")), link_sort_key(str(link.get(k, ""))))
                          for k in swept)
                + td(f"{row.n_a} / {row.n_b}") + "".join(ttfb) + "".join(total)
                + td(f'<span class="change {change}">{change}</span>', change)
                + (td(esc(f"differ: {', '.join(row.hosts_differ)}" if row.hosts_differ
                          else "alike"), cls="bad hosts-differ" if row.hosts_differ else "")
                   if machines else "") + "</tr>")
        caption = (
            f"Run {comp.b} ({esc(suites.get(comp.b, '?'))}) against run {comp.a} "
            f"({esc(suites.get(comp.a, '?'))}), the baseline: {len(comp.rows)} cells with "
            f"equal parameters, {worse} worse. B/A is the ratio of median times (above 1: run "
            f"{comp.b} slower) with its 95% bootstrap CI; rows whose TTFB or total ratio has "
            "its whole CI above 1 are marked <b>worse</b> (red), wholly below 1 "
            "<b>better</b> (green). Cells only one run has are left out.")
        if comp.host_warning:
            caption += (" <b>machines</b>: what differs between the hosts that ran the cell "
                        "in the two runs.")
        warning = (f'<p class="warning host-warning">{esc(comp.host_warning)}</p>'
                   if comp.host_warning else "")
        if comp.rows:
            parts.append(f"<h3>Run {comp.b} vs run {comp.a}</h3>" + warning
                         + sortable_table(f"compare-{comp.a}-{comp.b}", caption, headers,
                                          rows))
        else:
            parts.append(f"<h3>Run {comp.b} vs run {comp.a}</h3><p>The two runs share no "
                         "cell parameters: nothing to compare.</p>")
    parts.append("</section>")
    return "".join(parts)

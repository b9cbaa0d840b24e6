"""The economy report: one self-contained HTML file (inline SVG charts, no scripts, no external
assets, nothing fetched when it is opened) and CSV files of the same series.

Every number in the report comes from a `ReplayResult`: `series_tables` turns it into named tables
once, and both the HTML tables under each chart and the CSV files are written from those tables, so
they cannot disagree with each other or with the replay.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.audit.economy import PeriodSnapshot
from cli.audit.replay import ReplayResult
from cli.output import format_coins, format_time_ms

__all__ = ["Table", "series_tables", "render_html", "write_csv", "write_report"]

Cell = int | float | str

PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#c53030", "#319795", "#718096")


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]

    def column(self, name: str) -> list[Cell]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


def _per_period(name: str, title: str, columns: tuple[str, ...], snapshots: list[PeriodSnapshot]) -> Table:
    """A table whose columns are fields of the period snapshots, by the same names."""
    return Table(name, title, columns, [tuple(getattr(s, c) for c in columns) for s in snapshots])


def series_tables(result: ReplayResult) -> dict[str, Table]:
    """The report's series, by name (also the CSV file names)."""
    p = result.periods
    tables = [
        Table(
            "activity",
            "Blocks and transactions per period",
            ("period", "last_height", "last_block_time_ms", "blocks", "txs"),
            [(s.period, s.height, s.time_ms, s.blocks, s.txs) for s in p],
        ),
        _per_period(
            "supply",
            "Supply composition at the end of each period (base units)",
            ("period", "height", "circulating", "commons_pool", "ubi_reserve", "bonded", "total_supply"),
            p,
        ),
        _per_period("gini", "Gini coefficient of member balances (settled to the end of each period)", ("period", "members", "member_balances", "gini"), p),
        _per_period(
            "ubi", "UBI per member per period, and UBI credited to accounts in the period", ("period", "ubi_per_member", "ubi_member_count", "ubi_paid"), p
        ),
        _per_period(
            "demurrage",
            "Demurrage collected per period (when accounts settle), housing usage fees, stake slashed",
            ("period", "demurrage_collected", "usage_fees", "slashed"),
            p,
        ),
        Table(
            "quotas",
            "Quota allowed vs used, per node and resource",
            ("period", "node", "resource", "cap", "allowed", "granted", "consumed"),
            [(s.period, q.node, q.resource, q.cap, q.allowed, q.granted, q.consumed) for s in p for q in s.quotas],
        ),
        Table(
            "housing",
            "Housing: units, occupancy, queue and waiting times (periods), per node",
            ("period", "node", "units", "occupied", "vacant", "waiting", "wait_periods_mean", "granted", "granted_wait_periods_mean"),
            [
                (s.period, h.node, h.units, h.occupied, h.vacant, h.waiting, h.wait_periods_mean, h.granted, h.granted_wait_periods_mean)
                for s in p
                for h in s.housing
            ],
        ),
    ]
    return {t.name: t for t in tables}


def write_csv(result: ReplayResult, directory: str | Path) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in series_tables(result).values():
        path = out / f"{table.name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(table.columns)
            writer.writerows(table.rows)
        paths.append(path)
    return paths


# SVG ---------------------------------------------------------------------------------------------------------
W, H = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 24, 30


def _fmt_axis(value: float) -> str:
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:.3g}G"
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def svg_chart(title: str, xs: Sequence[int], series: Sequence[tuple[str, Sequence[float]]], kind: str = "line") -> str:
    """A chart over periods `xs`: kind "line", "stacked" (areas) or "bars" (grouped)."""
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{esc(title)}">']
    parts.append(f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{esc(title)}</text>')
    if not xs or not series:
        parts.append(f'<text x="{LEFT}" y="{H // 2}" font-size="12">no data</text></svg>')
        return "".join(parts)
    if kind == "stacked":
        tops = [sum(vals[i] for _, vals in series) for i in range(len(xs))]
        y_max = max(tops)
    else:
        y_max = max(max(vals) for _, vals in series)
    y_max = y_max if y_max > 0 else 1
    x0, x1 = min(xs), max(xs)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = len(xs)

    def px(i: int) -> float:
        if kind == "bars":
            return LEFT + plot_w * (i + 0.5) / n
        return LEFT + (plot_w * (xs[i] - x0) / (x1 - x0) if x1 > x0 else plot_w / 2)

    def py(v: float) -> float:
        return TOP + plot_h * (1 - v / y_max)

    # axes and grid
    for k in range(5):
        v = y_max * k / 4
        y = py(v)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{_fmt_axis(v)}</text>')
    ticks = sorted({0, n // 2, n - 1})
    for i in ticks:
        parts.append(f'<text x="{px(i):.1f}" y="{H - 12}" font-size="10" text-anchor="middle">{xs[i]}</text>')
    parts.append(f'<text x="{W - RIGHT}" y="{H - 2}" font-size="10" text-anchor="end">period</text>')
    if kind == "stacked":
        base = [0.0] * n
        for k, (name, vals) in enumerate(series):
            upper = [base[i] + vals[i] for i in range(n)]
            pts = [f"{px(i):.1f},{py(upper[i]):.1f}" for i in range(n)] + [f"{px(i):.1f},{py(base[i]):.1f}" for i in reversed(range(n))]
            parts.append(f'<polygon points="{" ".join(pts)}" fill="{PALETTE[k % len(PALETTE)]}" fill-opacity="0.75"/>')
            base = upper
    elif kind == "bars":
        group = plot_w / n
        width = max(1.0, group * 0.8 / len(series))
        for k, (name, vals) in enumerate(series):
            for i, v in enumerate(vals):
                x = LEFT + group * i + group * 0.1 + width * k
                parts.append(f'<rect x="{x:.1f}" y="{py(v):.1f}" width="{width:.1f}" height="{TOP + plot_h - py(v):.1f}" fill="{PALETTE[k % len(PALETTE)]}"/>')
    else:
        for k, (name, vals) in enumerate(series):
            pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(vals))
            color = PALETTE[k % len(PALETTE)]
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
            if n == 1:
                parts.append(f'<circle cx="{px(0):.1f}" cy="{py(vals[0]):.1f}" r="3" fill="{color}"/>')
    for k, (name, _) in enumerate(series):
        y = TOP + 14 * k + 8
        parts.append(f'<rect x="{W - RIGHT + 10}" y="{y - 8}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{W - RIGHT + 24}" y="{y + 1}" font-size="11">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nums(values: Sequence[Cell]) -> list[float]:
    return [float(v) for v in values]  # type: ignore[arg-type]


def _charts(tables: dict[str, Table]) -> dict[str, list[str]]:
    charts: dict[str, list[str]] = {}
    s = tables["supply"]
    xs = [int(x) for x in s.column("period")]
    a = tables["activity"]
    charts["activity"] = [svg_chart("Transactions per period", xs, [("txs", _nums(a.column("txs"))), ("blocks", _nums(a.column("blocks")))], "bars")]
    charts["supply"] = [
        svg_chart("Supply composition", xs, [(c, _nums(s.column(c))) for c in ("circulating", "commons_pool", "ubi_reserve", "bonded")], "stacked")
    ]
    g = tables["gini"]
    charts["gini"] = [svg_chart("Gini of member balances", xs, [("gini", _nums(g.column("gini")))])]
    u = tables["ubi"]
    charts["ubi"] = [svg_chart("UBI per member per period", xs, [("ubi_per_member", _nums(u.column("ubi_per_member")))], "bars")]
    d = tables["demurrage"]
    charts["demurrage"] = [svg_chart("Demurrage collected per period", xs, [("demurrage_collected", _nums(d.column("demurrage_collected")))], "bars")]
    q = tables["quotas"]
    charts["quotas"] = []
    for node, resource in sorted({(r[1], r[2]) for r in q.rows}):
        rows = [r for r in q.rows if r[1] == node and r[2] == resource]
        xs_q = [int(r[0]) for r in rows]
        charts["quotas"].append(
            svg_chart(f"{node} / {resource}: allowed vs used", xs_q, [("allowed", _nums([r[4] for r in rows])), ("consumed", _nums([r[6] for r in rows]))])
        )
    hs = tables["housing"]
    charts["housing"] = []
    for node in sorted({str(r[1]) for r in hs.rows}):
        rows = [r for r in hs.rows if r[1] == node]
        xs_h = [int(r[0]) for r in rows]
        cols = hs.columns
        charts["housing"].append(
            svg_chart(f"{node}: homes and queue", xs_h, [(c, _nums([r[cols.index(c)] for r in rows])) for c in ("units", "occupied", "waiting")])
        )
        charts["housing"].append(
            svg_chart(f"{node}: waiting time (periods)", xs_h, [(c, _nums([r[cols.index(c)] for r in rows])) for c in ("wait_periods_mean", "granted_wait_periods_mean")])
        )
    return charts


def _table_html(table: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in table.rows)
    return f'<details><summary>{len(table.rows)} rows (also {esc(table.name)}.csv)</summary><table id="t-{esc(table.name)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#1a202c}
h1{font-size:1.5em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #e2e8f0}
.ok{background:#f0fff4;border:1px solid #9ae6b4;padding:.6em 1em} .bad{background:#fff5f5;border:1px solid #feb2b2;padding:.6em 1em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0} td,th{border:1px solid #e2e8f0;padding:2px 6px;text-align:right}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px} dt{font-weight:600} dd{margin:0;font-family:monospace}
"""


def render_html(result: ReplayResult) -> str:
    esc = html.escape
    tables = series_tables(result)
    charts = _charts(tables)
    if result.ok:
        verdict = f'<p class="ok" id="verdict">Verified: every block from genesis to height {result.final_height}.</p>'
    else:
        verdict = f'<p class="bad" id="verdict">NOT verified: {esc(str(result.divergence))}. The series below stop at height {result.final_height}.</p>'
    s = result.supply
    facts = [
        ("chain", result.chain_id),
        ("genesis hash", result.genesis_hash),
        ("source", result.source),
        ("blocks verified", str(result.blocks)),
        ("transactions", str(result.txs)),
        ("final height", str(result.final_height)),
        ("final block time", format_time_ms(result.final_time_ms) if result.final_height else "-"),
        ("final state root", result.final_state_root),
        ("total supply", format_coins(s.get("total", 0))),
        ("circulating", format_coins(s.get("circulating", 0))),
        ("commons pool", format_coins(s.get("commons_pool", 0))),
        ("UBI reserve", format_coins(s.get("ubi_reserve", 0))),
        ("bonded", format_coins(s.get("bonded", 0))),
        ("demurrage collected", format_coins(s.get("demurrage_collected", 0))),
        ("UBI paid", format_coins(s.get("ubi_paid", 0))),
        ("slashed", f"{format_coins(s.get('slashed', 0))} ({len(result.slashes)} slashing block(s))"),
    ]
    summary = "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>"
    sections = []
    for name, table in tables.items():
        body = "".join(charts.get(name, [])) or "<p>No data.</p>"
        sections.append(f'<section id="s-{name}"><h2>{esc(table.title)}</h2>{body}{_table_html(table)}</section>')
    notes = (
        "<p>Amounts are in base units (1 coin = 1,000,000) unless shown in coins. Periods listed are those "
        "in which blocks were committed; each row is the state after the period's last block. Demurrage and "
        "UBI are credited lazily, when an account settles, so the per-period amounts collected are what "
        "settled in that period; member balances for the Gini coefficient are settled to the period's end.</p>"
    )
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Hearth economy report: {esc(result.chain_id)} to height {result.final_height}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Hearth economy report: {esc(result.chain_id)}</h1>{verdict}{summary}{notes}{''.join(sections)}"
        "</body></html>\n"
    )


def write_report(result: ReplayResult, out: str | Path, csv_dir: str | Path | None = None) -> list[Path]:
    path = Path(out)
    path.write_text(render_html(result), encoding="utf-8")
    written = [path]
    if csv_dir is not None:
        written += write_csv(result, csv_dir)
    return written

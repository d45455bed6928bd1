"""HTML of the report's first screen: the plain summary and the recommended picks (from :class:`SummaryInfo`)."""

from __future__ import annotations

import html

from lepton_tune.front import (
    METRIC_NAMES,
    Pick,
    TrialRecord,
    export_command,
    format_metric,
    format_ratio,
    with_first,
)
from lepton_tune.report._summary import HYPERVOLUME_MEANING, SummaryInfo

__all__ = ["counts_text", "picks_html", "summary_html"]


def _e(text: object) -> str:
    return html.escape(str(text))


def counts_text(counts: dict[str, int]) -> str:
    """``7 trials measured (2 baselines): 6 feasible, 0 infeasible, 0 failed, 0 noisy; 1 confirmation re-measure``."""
    base = f" ({counts['baselines']} baseline{'s' if counts['baselines'] != 1 else ''})" if counts["baselines"] else ""
    text = (
        f"{counts['measured']} trials measured{base}: {counts['feasible']} feasible, {counts['infeasible']} "
        f"infeasible, {counts['failed']} failed, {counts['noisy']} noisy (host busy, never recommended)"
    )
    if counts.get("running"):
        text += f", {counts['running']} running"
    if counts.get("confirmations"):
        n = counts["confirmations"]
        text += f"; {n} confirmation re-measure{'s' if n != 1 else ''}"
    return text


def summary_html(info: SummaryInfo) -> str:
    """The plain summary table: searched ranges, objectives, budgets, counts, front quality, host."""
    searched = "; ".join(f"<b>{_e(k)}</b> {_e(v)}" for k, v in info.searched.items()) or "one fixed point"
    share = info.hypervolume_share
    quality = (
        f'<b>{share:.0%}</b> of the best seen. <span class="note">{_e(HYPERVOLUME_MEANING)}</span>'
        if share is not None
        else "no feasible point yet"
    )
    rows = [
        ("Searched", searched),
        ("Objectives", _e("; ".join(info.objectives))),
        ("Budgets", _e("; ".join(info.budgets) or "none")),
        ("Trials", _e(counts_text(info.counts))),
        ("Front quality (hypervolume)", quality),
    ]
    if info.host:
        rows.append(("Host", _e(info.host)))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="summary">{body}</table>'


def _pick_html(pick: Pick, objectives: list[str], location: str) -> str:
    shown = list(objectives) + [m for m in ("throughput",) if m not in objectives]
    numbers = " &middot; ".join(
        f"{_e(METRIC_NAMES.get(name, name))} <b>{_e(with_first(name, pick.metrics.get(name), pick.first_metrics.get(name)))}</b>"
        for name in shown
        if pick.metrics.get(name) is not None
    )
    speed, mem = pick.metrics.get("speedup"), pick.metrics.get("memory_ratio")
    first_speed = pick.first_metrics.get("speedup")
    ratios = ""
    if speed is not None or mem is not None:
        was = f" (search: {format_ratio(first_speed)})" if pick.confirmed and first_speed not in (None, speed) else ""
        ratios = (
            f"<p><b>{_e(format_ratio(speed))}</b> the in-process baseline's throughput{_e(was)}, "
            f"<b>{_e(format_ratio(mem))}</b> its memory.</p>"
        )
    if pick.confirmation is not None:
        misses = any(v > 0 for v in pick.confirmation.constraints.values())
        status = (
            f'<p class="ok">Confirmed: re-measured in a fresh process as trial {pick.confirmation.number}; '
            "the numbers above are the confirmation's, the search's first measurement in brackets."
            + (" <b>The re-measure misses a budget.</b>" if misses else "")
            + "</p>"
        )
    else:
        status = '<p class="warn">Not yet confirmed &mdash; export confirms it (a fresh re-measure) before writing the bundle.</p>'
    roles = " &middot; ".join(_e(r) for r in pick.roles)
    return (
        f'<div class="pick"><h3>Trial {pick.trial.number} &middot; <code>{_e(pick.label)}</code></h3>'
        f'<p class="roles">{roles}</p><p>{numbers}</p>{ratios}{status}'
        f"<pre>{_e(export_command(pick.trial.number, location))}</pre></div>"
    )


def baseline_note(info: SummaryInfo, objectives: list[str], directions: list[str]) -> str:
    """When the in-process baseline is on the front: where it beats every pick, in words."""
    base = TrialRecord.of(info.baseline).metrics if info.baseline is not None else {}
    wins = []
    for name, direction in zip(objectives, directions):
        value = base.get(name)
        picked = [float(p.metrics[name]) for p in info.picks if isinstance(p.metrics.get(name), (int, float))]
        if value is None or not picked:
            continue
        if (value > max(picked)) if direction == "maximize" else (value < min(picked)):
            wins.append(f"{METRIC_NAMES.get(name, name)} ({format_metric(name, value)})")
    number = info.baseline.number if info.baseline is not None else "?"
    if not wins:
        return f"The in-process baseline (trial {number}) is itself on the front."
    return (
        f"The in-process baseline (trial {number}) is itself on the front and beats every pick on "
        + " and ".join(wins)
        + ": if that matters most, serving your model as it is wins there."
    )


def picks_html(info: SummaryInfo, objectives: list[str], directions: list[str]) -> str:
    """The recommended picks, each with its numbers, ratios, confirmation state and export command."""
    if not info.picks and info.baseline_on_front and info.baseline is not None:
        return (
            f"<p>No searched layout beats your in-process call (baseline trial {info.baseline.number}) on any "
            "objective: it is the whole front. Serve the model as it is, or widen the search (precision, batch "
            "size, runtime).</p>"
        )
    if not info.picks:
        return "<p>No feasible point yet: nothing to recommend. Run more trials or relax a budget.</p>"
    parts = [_pick_html(p, objectives, info.location) for p in info.picks]
    note = (
        "Ratios are against the in-process baseline of the same backbone (your model called in one plain "
        "process, as is)."
    )
    if info.baseline_on_front and info.baseline is not None:
        note += " " + baseline_note(info, objectives, directions)
    return f'<div class="picks">{"".join(parts)}</div><p class="note">{_e(note)}</p>'

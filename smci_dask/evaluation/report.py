"""The evaluation report: ``reports/<run>/`` with metrics (CSV, JSON), figures (PNG) and ``evaluation.md``.

:func:`headline` is the short table the CLI and the demo print: ubRMSE and R
per depth, ours against ERA5-Land, both experiments, against the matched
in-situ targets. :func:`render_markdown` writes a report a scientist can read
from start to end: set-up, data counts, the tables, the figures, the
importance, and what changed since the previous evaluated run in the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from smci_dask.evaluation.scoring import ALL_DEPTHS

__all__ = ["REPORTS_RELPATH", "headline", "headline_text", "render_markdown", "report_dir"]

#: Reports below the store root.
REPORTS_RELPATH: Final = "reports"


def report_dir(run: str) -> str:
    """``reports/<run>`` below the store root."""
    return f"{REPORTS_RELPATH}/{run}"


def headline(scores: pd.DataFrame, estimates: Sequence[str] = ("smci", "era5land")) -> pd.DataFrame:
    """ubRMSE (m3/m3) and R per experiment and depth (``all`` last) for ``estimates``, against the matched targets; wide."""
    sel = scores[(scores["group_by"] == "all") & (scores["reference"] == "matched") & scores["estimate"].isin(list(estimates))]
    if sel.empty:
        return pd.DataFrame()
    wide = sel.pivot_table(index=["experiment", "depth"], columns="estimate", values=["ubrmse", "r"], sort=False)
    wide.columns = [f"{m}_{e}" for m, e in wide.columns]
    cols = [f"{m}_{e}" for m in ("ubrmse", "r") for e in estimates if f"{m}_{e}" in wide.columns]
    out = wide[cols].reset_index()
    out["depth"] = out["depth"].map(lambda d: "all" if int(d) == ALL_DEPTHS else f"{int(d)} cm")
    order = {e: i for i, e in enumerate(dict.fromkeys(sel["experiment"]))}
    out["_o"] = out["experiment"].map(order)
    out["_d"] = out["depth"].map(lambda s: 10_000 if s == "all" else int(s.split()[0]))
    return out.sort_values(["_o", "_d"]).drop(columns=["_o", "_d"]).reset_index(drop=True)


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float | np.floating):
        return "" if not np.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if df.empty:
        return "(none)"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v, digits) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def headline_text(scores: pd.DataFrame, estimates: Sequence[str] = ("smci", "era5land")) -> str:
    """The headline table as fixed-width text for the terminal."""
    table = headline(scores, estimates)
    if table.empty:
        return "(no scores)"
    names = {"ubrmse_smci": "ubRMSE ours", "ubrmse_era5land": "ubRMSE ERA5-Land", "r_smci": "R ours", "r_era5land": "R ERA5-Land"}
    return table.rename(columns=names).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _with_ci(df: pd.DataFrame, metric: str) -> pd.Series:
    lo, hi = f"{metric}_lo", f"{metric}_hi"
    if lo not in df:
        return df[metric].map(_fmt)
    return pd.Series(
        [f"{_fmt(v)} [{_fmt(a)}, {_fmt(b)}]" if np.isfinite(a) else _fmt(v) for v, a, b in zip(df[metric], df[lo], df[hi], strict=True)],
        index=df.index,
    )


def _depth_table(scores: pd.DataFrame, experiment: str, reference: str) -> pd.DataFrame:
    sel = scores[(scores["experiment"] == experiment) & (scores["reference"] == reference) & (scores["group_by"] == "all")].copy()
    if sel.empty:
        return sel
    sel = sel.sort_values(["depth", "estimate"], key=lambda s: s.where(s != ALL_DEPTHS, 10_000) if s.name == "depth" else s)
    out = pd.DataFrame(
        {"depth": sel["depth"].map(lambda d: "all" if d == ALL_DEPTHS else f"{d} cm"), "estimate": sel["estimate"], "n": sel["n"]}
    )
    out["stations"] = sel["n_stations"]
    metrics = ("ubrmse", "rmse", "mae", "bias", "r", "r2") if reference == "matched" else ("ubrmse", "r")
    for m in metrics:
        out[m] = _with_ci(sel, m)
        out[f"median {m}"] = sel[f"median_{m}"].map(_fmt)
    return out


def _group_table(scores: pd.DataFrame, experiment: str, group_by: str, names: Mapping[int, str] | None = None) -> pd.DataFrame:
    sel = scores[
        (scores["experiment"] == experiment)
        & (scores["reference"] == "matched")
        & (scores["group_by"] == group_by)
        & (scores["depth"] == ALL_DEPTHS)
    ]
    if sel.empty:
        return sel
    wide = sel.pivot_table(index="group", columns="estimate", values=["ubrmse", "r", "n"], sort=False)
    order = sorted(wide.index, key=lambda g: (0, int(g), "") if str(g).isdigit() else (1, 0, str(g)))
    wide = wide.loc[order]
    wide.columns = [f"{m} {e}" for m, e in wide.columns]
    wide = wide.reset_index()
    for c in [c for c in wide.columns if c.startswith("n ")]:
        wide[c] = wide[c].fillna(0).astype(np.int64)
    if names is not None:
        wide["group"] = wide["group"].map(lambda g: f"{g} ({names.get(int(g), '?')})" if str(g).isdigit() else g)
    return wide


def changes_since(previous: Mapping[str, Any] | None, current: pd.DataFrame) -> str:
    """What changed against the previous run's headline (``metrics.json`` of another report), as Markdown."""
    if not previous:
        return "No earlier evaluated run in this store."
    prev = pd.DataFrame(previous.get("headline", []))
    if prev.empty or current.empty:
        return f"Previous run `{previous.get('run')}` has no comparable headline."
    merged = current.merge(prev, on=["experiment", "depth"], suffixes=("", "_prev"))
    cols = [c for c in ("ubrmse_smci", "r_smci") if c in merged and f"{c}_prev" in merged]
    out = merged[["experiment", "depth"]].copy()
    for c in cols:
        out[c] = merged[c]
        out[f"change {c}"] = merged[c] - merged[f"{c}_prev"]
    return f"Against run `{previous.get('run')}` (evaluated {previous.get('created', '?')}):\n\n" + markdown_table(out, 4)


def render_markdown(
    *,
    run: str,
    setup: Mapping[str, Any],
    counts: pd.DataFrame,
    scores: pd.DataFrame,
    importance: pd.DataFrame,
    figures: Sequence[tuple[str, str]],
    previous: Mapping[str, Any] | None,
    products: Sequence[str],
    zone_names: Mapping[int, str],
) -> str:
    """The report (see the module docstring); ``figures`` are ``(file name, caption)`` in the report folder."""
    experiments = list(dict.fromkeys(scores["experiment"])) if len(scores) else []
    head = headline(scores)
    lines = [
        f"# Evaluation of run `{run}`",
        "",
        "## Set-up",
        "",
        *[f"- **{k}**: {v}" for k, v in setup.items()],
        "",
        "Scores are computed on the test rows of each experiment. *Matched* observations are the in-situ series "
        "mean/std-matched to ERA5-Land (the paper's \"adjusted in-situ SM\") with statistics from the experiment's "
        "training part wherever the station cell has training rows (the year experiment: its training years, so a test "
        "year keeps its own departures from ERA5-Land's mean and spread); a station cell without training rows (every "
        "test cell of the station experiment) is matched on its own rows, so there the test targets have ERA5-Land's "
        "mean and spread exactly, over the test rows themselves. *Raw* observations are the daily in-situ means, "
        "scored for ubRMSE and R only. "
        "ERA5-Land (the soil moisture of the matching layer at the station's 0.1 degree cell) is the baseline; "
        "**its bias against matched targets is near zero by construction** (the targets were given ERA5-Land's "
        "mean), so compare ubRMSE and R, not bias, with ERA5-Land. Units: ubRMSE, RMSE, MAE, bias in m3/m3; R and "
        "R^2 dimensionless (R^2 = 1 - SSE/SST). Brackets: bootstrap 95 % intervals resampling station cells. "
        "Medians: of per-station (cell, depth) values with at least 30 days.",
        "",
        "## Data",
        "",
        markdown_table(counts, 0),
        "",
        "## Headline: ubRMSE and R per depth, ours vs ERA5-Land (matched targets)",
        "",
        markdown_table(head),
        "",
    ]
    for exp in experiments:
        lines += [
            f"## Experiment `{exp}`",
            "",
            "### Against matched in-situ targets",
            "",
            markdown_table(_depth_table(scores, exp, "matched")),
            "",
        ]
        lines += ["### Against raw in-situ series (ubRMSE, R)", "", markdown_table(_depth_table(scores, exp, "raw")), ""]
        zone = _group_table(scores, exp, "climate_zone", zone_names)
        if not zone.empty:
            lines += ["### By climate zone (all depths pooled, matched targets)", "", markdown_table(zone), ""]
        year = _group_table(scores, exp, "year")
        if not year.empty:
            lines += ["### By year (all depths pooled, matched targets)", "", markdown_table(year), ""]
    if products:
        lines += [
            "## Extra products",
            "",
            f"Scored at the same station cells and days where they have values ({', '.join(products)}); "
            "see the tables above (estimate column) and the metric-by-depth figure.",
            "",
        ]
    if len(importance):
        lines += [
            "## Importance",
            "",
            "Permutation importance on the test rows: increase of the test RMSE (m3/m3) when a family of features is "
            "shuffled, per depth (mean over repeats; importance.csv has the spread and every single feature, "
            "model_importance.csv the models' own split/gain shares).",
            "",
        ]
        for exp, part in importance.groupby("experiment", sort=False):
            fam = part[part["kind"] == "family"].pivot_table(index="name", columns="depth", values="importance", sort=False)
            fam = fam.loc[fam.mean(axis=1).sort_values(ascending=False).index]
            fam.columns = [f"{c} cm" for c in fam.columns]
            lines += [f"### Experiment `{exp}`", "", markdown_table(fam.reset_index(), 4), ""]
    lines += ["## Figures", ""]
    for name, caption in figures:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    lines += ["## What changed since the previous run", "", changes_since(previous, head), ""]
    return "\n".join(lines)


def metrics_json(run: str, created: str, scores: pd.DataFrame, setup: Mapping[str, Any]) -> str:
    """``metrics.json``: the run, the set-up, the headline and every score (NaN as null)."""
    head = headline(scores)
    payload = {
        "run": run,
        "created": created,
        "setup": dict(setup),
        "headline": json.loads(head.to_json(orient="records")) if len(head) else [],
        "scores": json.loads(scores.to_json(orient="records")) if len(scores) else [],
    }
    return json.dumps(payload, indent=1, default=str)

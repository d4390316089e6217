"""The study's report, findings first: what the confirmation runs say, then how the search went.

Every number comes from the files of the study (Ray's trial files of each search arm, the
confirmation JSON files, the references computed on the same split and protocol): nothing is
typed in. Written into one folder: findings.md and findings.html (the same content, HTML with the
plots inline), a CSV per table and the PNG plots.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd

from results.stats import ALPHA, equivalence, holm, mean_ci, paired, pareto_front
from results.study_plots import (VARIANT_LABEL, arm_parts, arm_search_seed, plot_arm_fronts, plot_budget,
                                 plot_effects, plot_pareto)
from results.findings_render import to_html_page, to_markdown_text
from tuning.config import STUDY_COMPARISONS, STUDY_METRICS
from settings import dotted_value

REFERENCE_LABEL = {"last_item_text": "reference: last item's text", "popularity": "reference: popularity",
                   "history_then_popularity": "reference: history, then popularity"}
SEGMENTS = (("overall", ""), ("tail item", "tail_item_"), ("tail user", "tail_user_"),
            ("new target", "new_target_"))
KEY_METRICS = ("ndcg_10", "tail_item_ndcg_10")
COMPARISONS = tuple(tuple(pair.split("-vs-")) for pair in STUDY_COMPARISONS)   # (treatment, control)
#: the LLM-ESR paper's settings (docs/design.md, "The LLM-ESR paper's settings"), against which
#: every reduction is stated
PAPER = {"model.max_len": 200, "train.epochs": 200, "train.patience": 20, "model.loss": "bce",
         "model.teacher": "batch", "model.hidden_size": 64, "model.dropout": 0.5,
         "train.batch_size": 128, "train.lr": 0.001}


# ---- tables -------------------------------------------------------------------------------------
def confirmation_frame(records: list[dict]) -> pd.DataFrame:
    """One row per confirmation run: arm, variant, backbone, seed, epochs and all test metrics."""
    rows = []
    for r in records:
        variant, backbone = arm_parts(r["arm"])
        rows.append({"arm": r["arm"], "variant": variant, "backbone": backbone,
                     "search": arm_search_seed(r["arm"]), "seed": r["seed"],
                     "best_epoch": r["best_epoch"], "epochs": r["epochs"], "seconds": r["seconds"],
                     **{f"valid_{k}": v for k, v in r["valid"].items()},
                     **{f"test_{k}": v for k, v in r["test"].items()}})
    return pd.DataFrame(rows)


def search_seed_spread(runs: pd.DataFrame, first_seed: int) -> pd.DataFrame:
    """Per arm searched with several searcher seeds: each search winner's confirmed test NDCG@10
    (overall and tail-item, mean over the confirmation seeds) and their spread, i.e. how much
    the search's own seed moves the answer (to set beside the differences between arms)."""
    extra = runs[runs["variant"] != "control"] if not runs.empty else runs
    if extra.empty or extra["search"].isna().all():
        return pd.DataFrame()
    rows = []
    for (backbone, variant), group in extra.groupby(["backbone", "variant"], sort=False):
        seeds = group["search"].map(lambda v: first_seed if pd.isna(v) else int(v))
        means = group.assign(search_seed=seeds).groupby("search_seed")[["test_ndcg_10", "test_tail_item_ndcg_10"]].mean()
        if len(means) < 2:
            continue
        row = {"backbone": backbone, "variant": VARIANT_LABEL[variant], "search seeds": len(means)}
        for column, label in (("test_ndcg_10", "NDCG@10"), ("test_tail_item_ndcg_10", "tail-item NDCG@10")):
            values = means[column]
            row[f"{label} per search seed"] = " / ".join(f"{v:.4f}" for v in values)
            row[f"{label} spread"] = float(values.max() - values.min())
            row[f"{label} spread %"] = 100 * float(values.max() - values.min()) / float(values.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(ci: dict) -> str:
    if ci["mean"] is None:
        return ""
    if ci["half_width"] is None:
        return f"{ci['mean']:.4f}"
    return f"{ci['mean']:.4f} ± {ci['half_width']:.4f}"


def results_table(runs: pd.DataFrame, refs: dict, backbones: list[str], metric: str) -> pd.DataFrame:
    """Per backbone: each arm's mean ± 95 % CI over seeds on test, then the references."""
    rows = []
    for backbone in backbones:
        for variant in ("plain", "llmesr", "icc", "control"):
            part = runs[(runs["backbone"] == backbone) & (runs["variant"] == variant)]
            if part.empty:
                continue
            row = {"backbone": backbone, "variant": VARIANT_LABEL[variant], "seeds": len(part)}
            for label, prefix in SEGMENTS:
                row[label] = _fmt(mean_ci(part[f"test_{prefix}{metric}"].tolist()))
            rows.append(row)
    for name, metrics in refs.get("test", {}).items():
        row = {"backbone": "any", "variant": REFERENCE_LABEL.get(name, name), "seeds": 0}
        for label, prefix in SEGMENTS:
            row[label] = f"{metrics[f'{prefix}{metric}']:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(runs: pd.DataFrame, backbones: list[str], primary: list[str], margin: float = 0.02) -> pd.DataFrame:
    """Paired comparisons per backbone (ICC vs LLM-ESR, ICC vs its control, LLM-ESR vs plain) on
    every test metric. The pre-registered `primary` family (comparison:metric, every backbone) is
    Holm-adjusted together; every other row is exploratory (raw p only). Each row also carries
    TOST at `margin` (relative to the control's mean): "no effect" then has a number."""
    rows = []
    for backbone in backbones:
        for treat, control in COMPARISONS:
            a = runs[(runs["backbone"] == backbone) & (runs["variant"] == treat)].sort_values("seed")
            b = runs[(runs["backbone"] == backbone) & (runs["variant"] == control)].sort_values("seed")
            seeds = sorted(set(a["seed"]) & set(b["seed"]))
            if len(seeds) == 0:
                continue
            a, b = a[a["seed"].isin(seeds)], b[b["seed"].isin(seeds)]
            for metric in STUDY_METRICS:
                test = paired(a[f"test_{metric}"].tolist(), b[f"test_{metric}"].tolist())
                tost = equivalence(a[f"test_{metric}"].tolist(), b[f"test_{metric}"].tolist(), margin)
                family = "primary" if f"{treat}-vs-{control}:{metric}" in primary else "exploratory"
                rows.append({"backbone": backbone, "comparison": f"{VARIANT_LABEL[treat]} vs {VARIANT_LABEL[control]}",
                             "metric": f"test {metric}", "family": family, "seeds": test["n"],
                             "difference": test["diff"], "ci95": test["diff_half_width"],
                             "relative_%": None if test["relative"] is None else 100 * test["relative"],
                             "p": test["p_value"], "d_z": test["d_z"], "tost_p": tost["p_value"]})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        chosen = frame["family"] == "primary"
        adjusted = holm([None if pd.isna(p) else float(p) for p in frame.loc[chosen, "p"]])
        frame["p_holm"] = math.nan
        frame.loc[chosen, "p_holm"] = [math.nan if p is None else p for p in adjusted]
    return frame


def _p_text(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "no test"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _effect(row: pd.Series, what: str) -> str:
    """A primary comparison is judged by its Holm-adjusted p; an exploratory one by its raw p,
    and says so."""
    rel = row["relative_%"]
    change = "" if rel is None or pd.isna(rel) else f"{rel:+.1f} %"
    primary = row.get("family") == "primary"
    p_raw = row["p_holm"] if primary else row["p"]
    p = None if pd.isna(p_raw) else float(p_raw)
    label = (f"Holm {_p_text(p)}" if p is not None else _p_text(p)) if primary else f"{_p_text(p)}, exploratory"
    if p is not None and p < ALPHA:
        return f"{change} {what} ({label})"
    tost = row.get("tost_p")
    if tost is not None and not pd.isna(tost) and float(tost) < ALPHA:
        return (f"no difference in {what} beyond the equivalence margin "
                f"({change}, {label}; TOST p = {float(tost):.3f})")
    return f"no significant difference in {what} ({change}, {label}; not shown equivalent either)"


def sentences(comp: pd.DataFrame, backbones: list[str]) -> list[str]:
    """One plain sentence per backbone, generated from the paired comparisons."""
    out = []
    for backbone in backbones:
        parts = []
        for treat, control in COMPARISONS:
            label = f"{VARIANT_LABEL[treat]} vs {VARIANT_LABEL[control]}"
            rows = comp[(comp["backbone"] == backbone) & (comp["comparison"] == label)] if not comp.empty else comp
            if rows.empty:
                continue
            overall = rows[rows["metric"] == "test ndcg_10"].iloc[0]
            tail = rows[rows["metric"] == "test tail_item_ndcg_10"].iloc[0]
            parts.append(f"{label}: {_effect(overall, 'NDCG@10')}; tail items: {_effect(tail, 'tail-item NDCG@10')}")
        if parts:
            out.append(f"**{backbone}**: " + ". ".join(parts) + ".")
    return out


def arm_trials(experiments: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All trials and all epoch rows of every arm, with arm, variant and backbone columns."""
    from results.load import load_experiment, load_history

    trials, epochs = [], []
    for arm, path in experiments.items():
        variant, backbone = arm_parts(arm)
        frame = load_experiment(path).assign(arm=arm, variant=variant, backbone=backbone)
        history = load_history(path)
        if not history.empty:
            history = history.assign(arm=arm, variant=variant, backbone=backbone)
            if "share_icc" in history.columns:
                share = history.groupby("trial_id")["share_icc"].mean()
                frame["icc_share"] = frame["trial_id"].map(share)
            epochs.append(history)
        trials.append(frame)
    return (pd.concat(trials, ignore_index=True),
            pd.concat(epochs, ignore_index=True) if epochs else pd.DataFrame())


def best_configs(trials: pd.DataFrame) -> pd.DataFrame:
    """The best trial of each arm (the one confirmed), with the parameters the search chose."""
    from results.tables import ranked

    rows = []
    for arm in sorted(trials["arm"].unique()):
        order = ranked(trials[trials["arm"] == arm])
        if order.empty:
            continue
        top = order.iloc[0]
        row = {"arm": arm, "trial_id": top["trial_id"], "valid_ndcg_10": top["valid_ndcg_10"],
               "valid_tail_item_ndcg_10": top.get("valid_tail_item_ndcg_10"), "best_epoch": top["best_epoch"]}
        searched = ("lr", "dropout") + (("gamma", "n_clusters", "cluster_method", "icc_share")
                                         if top["variant"] == "icc" else ())
        for column in searched:
            if column in top.index and not _missing(top[column]):
                row[column] = top[column]
        rows.append(row)
    return pd.DataFrame(rows)


def confirmed_clusters(records: list[dict]) -> dict[str, dict[str, Any]]:
    """Quality of the clustering each ICC arm confirmed (built from its config, cached): how
    many clusters, the largest one's share of the items, the noise share, degenerate or not."""
    from cluster_prep.build import build_clusters
    from datasets.prepare import prepare_dataset
    from model.llmesr import pca_matrix
    from tuning.config import config_from_dict

    out: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["arm"] in out or arm_parts(record["arm"])[0] != "icc":
            continue
        config = config_from_dict(record["config"])
        data = prepare_dataset(config.data, progress=False)
        pca = pca_matrix(data, config.model.hidden_size)
        quality = build_clusters(data, config.clusters, config.data.cache_dir, pca).quality
        out[record["arm"]] = {"clusters_found": quality["n_clusters"],
                              "largest_share": quality.get("largest_share"),
                              "noise_share": quality["noise_share"], "degenerate": quality.get("degenerate")}
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def front_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The Pareto front of overall vs tail-item validation NDCG@10 over every scored trial."""
    scored = trials[trials["valid_ndcg_10"].notna() & trials["valid_tail_item_ndcg_10"].notna()
                    & (trials["state"] != "errored")].reset_index(drop=True)
    if scored.empty:
        return scored
    front = pareto_front(list(zip(scored["valid_ndcg_10"], scored["valid_tail_item_ndcg_10"])))
    columns = [c for c in ("arm", "trial_id", "valid_ndcg_10", "valid_tail_item_ndcg_10", "lr", "dropout",
                           "gamma", "n_clusters", "cluster_method", "state") if c in scored.columns]
    return scored.loc[front, columns].reset_index(drop=True)


def arm_fronts(trials: pd.DataFrame) -> pd.DataFrame:
    """Per search arm: its own Pareto front of overall vs tail-item validation NDCG@10 and the
    front's hypervolume against the origin (results.pareto). Arms with the same budget, so a
    larger hypervolume for the ICC arm than for the LLM-ESR arm says ICC moved the front."""
    from results.pareto import hypervolume, reference_point

    scored = trials[trials["valid_ndcg_10"].notna() & trials["valid_tail_item_ndcg_10"].notna()
                    & (trials["state"] != "errored")] if not trials.empty else trials
    rows = []
    for arm, part in (scored.groupby("arm", sort=True) if not scored.empty else []):
        points = list(zip(part["valid_ndcg_10"], part["valid_tail_item_ndcg_10"]))
        front = [points[i] for i in pareto_front(points)]
        variant, backbone = arm_parts(arm)
        rows.append({"backbone": backbone, "arm": arm, "variant": VARIANT_LABEL.get(variant, variant),
                     "trials": len(points), "front": len(front),
                     "hypervolume": hypervolume(front, reference_point(2)),
                     "best valid NDCG@10": max(p[0] for p in points),
                     "best valid tail-item NDCG@10": max(p[1] for p in points)})
    return pd.DataFrame(rows)


# ---- search curves ----------------------------------------------------------------------------
def budget_curves(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: best-so-far validation NDCG@10 after each reported trial-epoch, in report order."""
    if epochs.empty or "valid_ndcg_10" not in epochs.columns:
        return pd.DataFrame()
    order = "timestamp" if "timestamp" in epochs.columns else "time_total_s"
    rows = []
    for arm, part in epochs.groupby("arm"):
        part = part.sort_values([order, "trial_id", "epoch"])
        best = part["valid_ndcg_10"].cummax().to_numpy()
        rows.append(pd.DataFrame({"arm": arm, "trial_epochs": range(1, len(part) + 1), "best_so_far": best}))
    return pd.concat(rows, ignore_index=True)


# ---- the documents ------------------------------------------------------------------------------
def reductions(config: Any) -> list[str]:
    """Every setting where the study departs from the LLM-ESR paper's, in words."""
    from datasets.config import resolve_cores
    from tuning.config import config_to_dict

    data = config_to_dict(config)
    out = [f"`{key}` = {dotted_value(data, key)!r} (paper: {paper!r})"
           for key, paper in PAPER.items() if dotted_value(data, key) != paper]
    out.append(f"item text embeddings: {resolve_cores(config.data).embedder} "
               "(the paper used OpenAI ada-002, 1536-d; MiniLM is 384-d)")
    out.append(f"confirmation runs train all {config.train.epochs} epochs (no early stopping) and test the "
               f"best-validation epoch; search trials stop after {config.train.patience} epochs without "
               f"improvement or when ASHA stops them")
    out.append(f"confirmation seeds {config.study.seeds} (paper: 42-44); search budget "
               f"{config.study.trials_per_arm} trials per arm with ASHA (grace {config.tune.grace_period}, "
               f"reduction factor {config.tune.reduction_factor:g})")
    dims = searched_dimensions(config)
    if config.study.trials_per_arm < TRIALS_PER_DIMENSION * dims:
        out.append(f"search budget below the rule of {TRIALS_PER_DIMENSION} trials per searched dimension: "
                   f"{config.study.trials_per_arm} trials for the ICC arm's {dims} dimensions "
                   f"(the rule asks {TRIALS_PER_DIMENSION * dims})")
    return out


TRIALS_PER_DIMENSION = 10     # the study's budget rule (docs/studies/README.md)


def searched_dimensions(config: Any) -> int:
    """Parameters the largest arm (ICC: tune.space plus study.icc_space) searches."""
    from tuning.space import is_fixed

    space = {**config.tune.space, **config.study.icc_space}
    return sum(1 for key, spec in space.items() if key not in ("variant", "backbone") and not is_fixed(spec))


def _sections(config: Any, name: str, runs: pd.DataFrame, refs: dict, trials: pd.DataFrame,
              plots: dict[str, str | None], tables: dict[str, pd.DataFrame], said: list[str],
              shares: list[str], command: str | None) -> list[tuple]:
    """The report as (kind, payload) pieces, rendered to Markdown and to HTML alike."""
    n_seeds = len(config.study.seeds)
    dataset = config.data.name
    pieces: list[tuple] = [
        ("h1", f"Study {name}: does the item-cluster constraint help on {dataset}?"),
        ("p", f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()} "
              f"({platform.node()}, {os.cpu_count()} CPU cores, {_device()}); {len(trials)} search trials in {trials['arm'].nunique()} arms, "
              f"{len(runs)} confirmation runs. Test split, full ranking with the history masked "
              f"(repeat policy `{config.eval.repeats}`), best-validation weights."),
        ("h2", "Findings"),
        ("list", said or ["No confirmation runs yet."]),
        ("p", f"Paired two-sided t-tests over {n_seeds} seeds (the same seeds for every arm), "
              f"significance at {ALPHA}. The pre-registered primary family "
              f"({', '.join(f'`{e}`' for e in config.study.primary)}, on every backbone: "
              f"{_family_size(tables['comparisons'])} tests) is judged by Holm-adjusted p; every other "
              f"comparison is exploratory and shows its raw p. A difference that is not significant is "
              f"called equivalent only where TOST at +/-{100 * config.study.margin:g} % of the control's "
              f"mean says so (`tost_p`)."),
        ("h3", f"Test NDCG@10, mean ± 95 % CI over {n_seeds} seeds"),
        ("table", tables["ndcg"]),
        ("h3", f"Test Hit@10, mean ± 95 % CI over {n_seeds} seeds"),
        ("table", tables["hit"]),
        ("h3", "Paired comparisons (treatment minus control, per seed)"),
        ("table", tables["comparisons"]),
        ("h3", "Search-seed spread: how much the searcher's own seed moves the confirmed answer"),
        *_spread_pieces(config, tables["spread"]),
        ("h3", "The configuration each arm confirmed (its best search trial; for ICC arms, the "
               "clustering it used: clusters found, the largest cluster's share of the items, noise)"),
        ("table", tables["best"]),
        ("h2", "Which settings buy tail quality, and what they cost overall"),
        ("p", "Every search trial's best-epoch validation NDCG@10 against its tail-item NDCG@10; "
              "the trials on the Pareto front:"),
        ("image", plots.get("pareto")),
        ("table", tables["front"]),
        ("h3", "Does ICC move the front? Each arm's own front (the same search budget per arm)"),
        ("p", "Each arm's Pareto front of validation NDCG@10 against validation tail-item NDCG@10, and its "
              "hypervolume against the origin (the area the front dominates; larger is better on both)."),
        ("image", plots.get("fronts")),
        ("table", tables["fronts"]),
        ("h2", "Search budget"),
        ("p", "Best validation NDCG@10 so far against cumulative trial-epochs, per arm (no grid was "
              "run in this study; `bench/search_efficiency.py` compares search with a grid)."),
        ("image", plots.get("budget")),
        ("h2", "Gamma and cluster count"),
        ("p", "ICC trials only: validation NDCG@10 against gamma and n_clusters, and the share of the "
              "training loss the ICC term contributes (gamma x ICC loss over the weighted total), "
              "with a kernel-smoothed trend per backbone."),
        ("image", plots.get("effects")),
        ("list", shares),
        ("h2", "Reductions against the paper's settings"),
        ("list", reductions(config)),
        ("h2", "Files"),
        ("list", ["`confirmation_runs.csv`: every confirmation run, all validation and test metrics",
                  "`search_trials.csv`: every search trial of every arm",
                  "`references.csv`: the training-free references on validation and test",
                  "`study_config.json`: the exact config of the study"]),
        ("h2", "Regenerate and check"),
        ("list", [f"Findings (reruns nothing that is done; runs whatever is missing): `{command}`"
                  if command else "Findings: `python launch.py study --config CONFIG --name "
                  f"{name} --resume --findings DIR` with the study's config file",
                  f"One confirmation run from scratch, every test metric compared: `python launch.py "
                  f"reproduce {config.tune.storage_path.rstrip('/')}/{name}/confirm/ARM/seed-S.json`"]),
    ]
    return pieces


def _spread_pieces(config: Any, spread: pd.DataFrame) -> list[tuple]:
    if spread.empty:
        return [("p", "Not measured: each arm was searched with one searcher seed (`study.search_seeds` "
                      "lists several to measure it).")]
    return [("p", f"Each arm searched with searcher seeds {config.study.search_seeds}, the winner of each "
                  f"search confirmed over the same {len(config.study.seeds)} seeds; the tables above use "
                  f"the first search's winner. A spread as large as a difference between arms means that "
                  f"difference may be the search's luck."), ("table", spread)]


def _family_size(comp: pd.DataFrame) -> int:
    return int((comp["family"] == "primary").sum()) if "family" in comp else 0


def _device() -> str:
    import torch

    return f"CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"


def icc_share_sentences(trials: pd.DataFrame, backbones: list[str]) -> list[str]:
    """How much of the training loss the constraint carried in each backbone's ICC search, and how
    the trials that let it matter (over 20 % of the loss) did against the arm's best trial: a
    range that never lets ICC matter would answer "no effect" by construction."""
    if trials.empty or "icc_share" not in trials:
        return []
    out = []
    for backbone in backbones:
        icc = trials[(trials["arm"] == f"icc-{backbone}") & trials["icc_share"].notna()]
        if icc.empty:
            continue
        best = icc.loc[icc["valid_ndcg_10"].idxmax()]
        heavy = icc[icc["icc_share"] > 0.2]
        text = (f"**{backbone}**: ICC carried {icc['icc_share'].min():.2%} to {icc['icc_share'].max():.1%} "
                f"of the loss (gamma {icc['gamma'].min():.3g} to {icc['gamma'].max():.3g}); the best "
                f"ICC trial {best['icc_share']:.2%} (validation NDCG@10 {best['valid_ndcg_10']:.4f})")
        if not heavy.empty:
            text += (f"; the {len(heavy)} trials above 20 % reached at most "
                     f"{heavy['valid_ndcg_10'].max():.4f}")
        out.append(text + ".")
    return out


def reference_frame(refs: dict) -> pd.DataFrame:
    return pd.DataFrame([{"split": split, "reference": name, **metrics}
                         for split, by_name in refs.items() for name, metrics in by_name.items()])


def write_findings(config: Any, folder: Path, experiments: dict[str, Path], records: list[dict],
                   refs: dict, out: Path, command: str | None = None) -> dict[str, Any]:
    """Write the findings of the study in `folder` into `out`; return the paths and headline."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    backbones = list(config.study.backbones)
    every_run = confirmation_frame(records)
    runs = every_run[every_run["search"].isna()] if not every_run.empty else every_run   # the compared winners
    trials, epochs = arm_trials(experiments)
    comp = comparisons(runs, backbones, config.study.primary, config.study.margin) if not runs.empty else pd.DataFrame()
    said = sentences(comp, backbones) if not comp.empty else []
    front = front_table(trials)
    curves = budget_curves(epochs)
    best = best_configs(trials)
    quality = confirmed_clusters(records)
    if not best.empty and quality:
        best = best.merge(pd.DataFrame([{"arm": arm, **q} for arm, q in quality.items()]), on="arm", how="left")
    tables = {
        "ndcg": results_table(runs, refs, backbones, "ndcg_10") if not runs.empty else pd.DataFrame(),
        "hit": results_table(runs, refs, backbones, "hit_10") if not runs.empty else pd.DataFrame(),
        "comparisons": comp, "best": best, "front": front,
        "fronts": arm_fronts(trials),
        "spread": search_seed_spread(every_run, (config.study.search_seeds or [config.tune.search_seed])[0]),
    }
    plots = {"pareto": plot_pareto(trials, front, out / "pareto.png"),
             "budget": plot_budget(curves, backbones, out / "budget.png"),
             "fronts": plot_arm_fronts(trials, backbones, out / "fronts.png"),
             "effects": plot_effects(trials, backbones, out / "gamma_clusters.png")}
    for table_name, frame in tables.items():
        frame.to_csv(out / f"{table_name}.csv", index=False)
    every_run.to_csv(out / "confirmation_runs.csv", index=False)
    trials.drop(columns=["path", "checkpoint"], errors="ignore").to_csv(out / "search_trials.csv", index=False)
    reference_frame(refs).to_csv(out / "references.csv", index=False)
    curves.to_csv(out / "budget_curves.csv", index=False)
    if (folder / "study_config.json").resolve() != (out / "study_config.json").resolve():
        shutil.copyfile(folder / "study_config.json", out / "study_config.json")
    pieces = _sections(config, folder.name, runs, refs, trials, plots, tables, said,
                       icc_share_sentences(trials, backbones), command)
    markdown = out / "findings.md"
    markdown.write_text(to_markdown_text(pieces))
    page = out / "findings.html"
    page.write_text(to_html_page(f"Study {folder.name}", pieces))
    return {"markdown": str(markdown), "html": str(page), "sentences": said,
            "plots": {k: v for k, v in plots.items() if v}}

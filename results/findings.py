"""The study's report, findings first: what the confirmation runs say, then how the search went.

Every number comes from the files of the study (Ray's trial files of each search arm, the
confirmation JSON files, the references computed on the same split and protocol): nothing is
typed in. Written into one folder: findings.md and findings.html (the same content, HTML with the
plots inline), a CSV per table and the PNG plots.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd

from results.epoch_choice import chosen_on
from results.findings_claims import comparisons, reference_sentences, search_seed_spread, sentences
from results.findings_render import to_html_page, to_markdown_text
from results.findings_fronts import fronts_on_test_pieces, hypervolume_comparisons, seed_hypervolumes
from results.findings_scope import cost_pieces, cost_table, part_way_pieces, run_scope
from results.findings_search import (EDGE, arm_fronts, arm_trials, at_range_ends, best_configs, budget_curves,
                                     confirmed_clusters, confirmed_fronts, confirmed_hypervolumes, edge_note,
                                     front_points_by_seed, front_table)
from results.references import REFERENCE_LABEL
from results.stats import ALPHA, at_cap_sentence, change_text, ci_text, mean_ci
from results.study_plots import (VARIANT_LABEL, arm_parts, arm_search_seed, plot_arm_fronts, plot_budget,
                                 plot_confirmed_fronts, plot_effects, plot_pareto)
from settings import dotted_value

SEGMENTS = (("overall", ""), ("tail item", "tail_item_"), ("tail user", "tail_user_"),
            ("new target", "new_target_"))
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
                row[label] = ci_text(mean_ci(part[f"test_{prefix}{metric}"].tolist()))
            rows.append(row)
    for name, metrics in refs.get("test", {}).items():
        row = {"backbone": "any", "variant": REFERENCE_LABEL.get(name, name), "seeds": 0}
        for label, prefix in SEGMENTS:
            row[label] = f"{metrics[f'{prefix}{metric}']:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


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
    stopped = (f"after {config.train.patience} epochs without improvement or when ASHA stops them"
               if config.train.patience else "when ASHA stops them (no patience)")
    out.append(f"confirmation runs train all {config.train.epochs} epochs (no early stopping) and test the "
               f"best-validation epoch{_by_metric(config)}; search trials stop {stopped}")
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
              shares: list[str], command: str | None, dose_pieces: list[tuple], scope: str) -> list[tuple]:
    """The report as (kind, payload) pieces, rendered to Markdown and to HTML alike; `scope` says
    how many trials and runs they rest on."""
    n_seeds = len(config.study.seeds)
    dataset = config.data.name
    pieces: list[tuple] = [
        ("h1", f"Study {name}: does the item-cluster constraint help on {dataset}?"),
        ("p", f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()} "
              f"({platform.node()}, {os.cpu_count()} CPU cores, {_device()}); {scope}. Test split, full "
              f"ranking with the history masked (repeat policy `{config.eval.repeats}`), best-validation weights."),
        *part_way_pieces(tables.get("cost")),
        ("h2", "Findings"),
        ("list", said or ["No confirmation runs yet."]),
        ("p", f"Paired two-sided t-tests over {n_seeds} seeds (the same seeds for every arm), "
              f"significance at {ALPHA}. The pre-registered primary family "
              f"({', '.join(f'`{e}`' for e in config.study.primary)}, on every backbone: "
              f"{_family_size(tables['comparisons'])} tests) is judged by Holm-adjusted p; every other "
              f"comparison is exploratory and shows its raw p. A difference that is not significant is "
              f"called equivalent only where TOST at ±{100 * config.study.margin:g} % of the control's "
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
        _edge_piece(config, tables["best"]),
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
        *fronts_on_test_pieces(config, tables["fronts_on_test"], plots, tables["front_hypervolumes"]),
        *dose_pieces,
        ("h2", "Search budget"),
        ("p", "Best validation NDCG@10 so far against cumulative trial-epochs, per arm (no grid was "
              "run in this study; `bench/search_efficiency.py` compares search with a grid)."),
        ("image", plots.get("budget")),
        *_gamma_pieces(plots.get("effects"), shares),
        *cost_pieces(tables.get("cost")),
        ("h2", "Reductions against the paper's settings"),
        ("list", reductions(config)),
        ("p", at_cap_sentence(runs["best_epoch"].tolist() if not runs.empty else [], config.train.epochs)),
        ("h2", "Files"),
        ("list", ["`confirmation_runs.csv`: every confirmation run, all validation and test metrics",
                  "`search_trials.csv`: every search trial of every arm",
                  "`references.csv`: the training-free references on validation and test",
                  "`cost.csv`: runs and training hours per stage",
                  "`study_config.json`: the exact config of the study"]),
        ("h2", "Regenerate and check"),
        ("list", [_regenerate_line(command) if command else "Findings: `python launch.py study --config CONFIG --name "
                  f"{name} --resume --findings DIR` with the study's config file",
                  f"One confirmation run from scratch, every test metric compared: `python launch.py "
                  f"reproduce {config.tune.storage_path.rstrip('/')}/{name}/confirm/ARM/seed-S.json`"]),
    ]
    return pieces


def _gamma_pieces(effects_plot: str | None, shares: list[str]) -> list[tuple]:
    """ICC's searched weight and cluster count; a study part way may have no ICC trial yet."""
    if not effects_plot and not shares:
        body = [("p", "No ICC search trials yet: this section plots them once an ICC arm has searched.")]
    else:
        body = [("p", "ICC trials only: validation NDCG@10 against gamma and n_clusters (and min_cluster_size "
                      "where HDBSCAN trials searched it), and the share of the training loss the ICC term "
                      "contributes (gamma x ICC loss over the weighted total), with a kernel-smoothed trend "
                      "per backbone."),
                ("image", effects_plot), ("list", shares)]
    return [("h2", "Gamma and cluster count"), *body]


def _regenerate_line(command: str) -> str:
    if "--report-only" in command.split():
        return f"Findings from the runs on disk (runs nothing; `--resume` instead runs what is missing): `{command}`"
    return f"Findings (reruns nothing that is done; runs whatever is missing): `{command}`"


def _spread_pieces(config: Any, spread: pd.DataFrame) -> list[tuple]:
    if spread.empty and len(config.study.search_seeds) > 1:
        return [("p", f"Not measured yet: no arm has confirmation runs from two of its searcher seeds "
                      f"{config.study.search_seeds} so far (the stages still to come are listed above).")]
    if spread.empty:
        return [("p", "Not measured: each arm was searched with one searcher seed (`study.search_seeds` "
                      "lists several to measure it).")]
    return [("p", f"Each arm searched with searcher seeds {config.study.search_seeds}, the winner of each "
                  f"search confirmed over the same {len(config.study.seeds)} seeds; the tables above use "
                  f"the first search's winner. A spread as large as a difference between arms means that "
                  f"difference may be the search's luck. `spread p`: a paired t-test of the highest "
                  f"winner against the lowest over the confirmation seeds, whether the spread is the "
                  f"searches' or the seeds' own noise."), ("table", spread)]


def _edge_piece(config: Any, best: pd.DataFrame) -> tuple:
    """Which chosen values lie at an end of their searched range: the search may not have found
    the best value, and an ICC arm at its lowest share tests ICC at almost no weight."""
    found = at_range_ends(best, config.tune.space, config.study.icc_space) if not best.empty else []
    if not found:
        return ("p", f"Every chosen value lies inside its searched range (none within {100 * EDGE:g} % of "
                     f"its length from an end, on its scale).")
    low_share = any(f["name"] == "icc_share" and f["end"] == "low" for f in found)
    return ("p", f"At an end of the searched range (within {100 * EDGE:g} % of its length, on its scale), "
                 f"so the best value may lie beyond it: {'; '.join(edge_note(f) for f in found)}."
                 + (" An ICC arm at its lowest share compares ICC at almost no weight with its control; "
                    "the dose-response compares fixed shares." if low_share else ""))


def _family_size(comp: pd.DataFrame) -> int:
    return int((comp["family"] == "primary").sum()) if "family" in comp else 0


def _device() -> str:
    import torch

    return f"CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"


def icc_share_sentences(trials: pd.DataFrame, backbones: list[str]) -> list[str]:
    """How much of the training loss the constraint carried in each backbone's ICC search, and how
    the trials that let it matter (over 20 % of the loss) did against the arm's best trial: a
    range that never lets ICC matter would answer "no effect" by construction."""
    if trials.empty or "icc_carried" not in trials:
        return []
    out = []
    for backbone in backbones:
        icc = trials[(trials["arm"] == f"icc-{backbone}") & trials["icc_carried"].notna()]
        if icc.empty:
            continue
        best = icc.loc[icc["valid_ndcg_10"].idxmax()]
        heavy = icc[icc["icc_carried"] > 0.2]
        text = (f"**{backbone}**: ICC carried {icc['icc_carried'].min():.2%} to {icc['icc_carried'].max():.1%} "
                f"of the loss on average over a trial's epochs (gamma {icc['gamma'].min():.3g} to "
                f"{icc['gamma'].max():.3g}); the best ICC trial {best['icc_carried']:.2%} (validation "
                f"NDCG@10 {best['valid_ndcg_10']:.4f})")
        if not heavy.empty:
            which = "the one trial" if len(heavy) == 1 else f"the {len(heavy)} trials"
            at_most = "" if len(heavy) == 1 else "at most "
            text += f"; {which} above 20 % reached {at_most}{heavy['valid_ndcg_10'].max():.4f}"
        out.append(text + ".")
    return out


def reference_frame(refs: dict) -> pd.DataFrame:
    return pd.DataFrame([{"split": split, "reference": name, **metrics}
                         for split, by_name in refs.items() for name, metrics in by_name.items()])


def _dose_pieces(doses: dict[str, dict[str, Any]], out: Path) -> list[tuple]:
    """Each dose-response of the study (`study.dose_backbones`): its plot (copied beside the
    findings), its primary family (each clustering's best share against no ICC, Holm over the
    family) and a link to its whole report."""
    import shutil

    from results.dose_report import METRIC_LABEL

    if not doses:
        return []
    pieces: list[tuple] = [
        ("h2", "ICC's dose-response around each tuned LLM-ESR arm"),
        ("p", "No search: the backbone's confirmed LLM-ESR configuration with ICC at fixed shares of the loss "
              "(`model.icc_share`) for each clustering, against the same configuration without ICC, over paired "
              "seeds. The screen is exploratory; the primary family is each clustering's best share (chosen on "
              "validation) on every seed, Holm-adjusted on its own, with TOST beside each test.")]
    for backbone, report in doses.items():
        folder = Path(report["folder"])
        image = None
        if report.get("plot"):
            image = out / f"{folder.name}.png"          # named after the stage's own report folder
            shutil.copyfile(report["plot"], image)
        primary = pd.DataFrame(report.get("confirmed", []))
        if not primary.empty:
            primary = pd.DataFrame({
                "clustering": primary["clustering"], "share": [f"{100 * v:g} %" for v in primary["share"]],
                "metric": primary["metric"].map(lambda m: METRIC_LABEL.get(m, m)), "seeds": primary["seeds"],
                "vs control [95 % CI]": [change_text(row) for row in report["confirmed"]],
                "p (Holm)": primary["p_holm"].round(3), "TOST p": primary["tost_p"].round(3),
                "verdict": primary["verdict"]})
        pieces += [("h3", f"{backbone}: {report['runs']} runs, {report['missing']} still to run "
                          f"([the whole report]({folder.name}/dose.md))"),
                   ("image", str(image) if image else None),
                   *([("p", "Answer: " + " ".join(report["answer"])), ("table", primary)]
                     if not primary.empty else [("p", "Primary family: not chosen yet (the screen is not whole).")])]
    return pieces


def write_findings(config: Any, folder: Path, experiments: dict[str, Path], records: list[dict],
                   refs: dict, out: Path, command: str | None = None,
                   front_runs: list[dict] | None = None,
                   doses: dict[str, dict[str, Any]] | None = None,
                   cost: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write the findings of the study in `folder` into `out` (with `doses`, the dose-response
    reports run_dose_stage wrote, by backbone; with `cost`, the study's stages as
    `study --status` reads them); return the paths and headline."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    backbones = list(config.study.backbones)
    every_run = confirmation_frame(records)
    runs = every_run[every_run["search"].isna()] if not every_run.empty else every_run   # the compared winners
    trials, epochs = arm_trials(experiments)
    comp = comparisons(runs, backbones, config.study.primary, config.study.margin) if not runs.empty else pd.DataFrame()
    said = (sentences(comp, backbones) if not comp.empty else []) + reference_sentences(runs, refs, backbones)
    front = front_table(trials)
    curves = budget_curves(epochs)
    best = best_configs(trials)
    quality = confirmed_clusters(records)
    if not best.empty and quality:
        best = best.merge(pd.DataFrame([{"arm": arm, **q} for arm, q in quality.items()]), on="arm", how="left")
    on_test = confirmed_fronts(trials, every_run, front_runs or [], config.study.front_seeds)
    fronts = arm_fronts(trials)
    if not on_test.empty and not fronts.empty:
        fronts["test hypervolume (confirmed)"] = fronts["arm"].map(confirmed_hypervolumes(on_test))
    sizes = on_test.groupby("arm").size().to_dict() if not on_test.empty else {}
    volumes = hypervolume_comparisons(seed_hypervolumes(
        front_points_by_seed(trials, every_run, front_runs or [], config.study.front_seeds), sizes))
    tables = {
        "ndcg": results_table(runs, refs, backbones, "ndcg_10") if not runs.empty else pd.DataFrame(),
        "hit": results_table(runs, refs, backbones, "hit_10") if not runs.empty else pd.DataFrame(),
        "comparisons": comp, "best": best, "front": front,
        "fronts": fronts, "fronts_on_test": on_test, "front_hypervolumes": volumes,
        "spread": search_seed_spread(every_run, (config.study.search_seeds or [config.tune.search_seed])[0]),
        "cost": cost_table(cost or []),
    }
    plots = {"pareto": plot_pareto(trials, front, out / "pareto.png"),
             "budget": plot_budget(curves, backbones, out / "budget.png"),
             "fronts": plot_arm_fronts(trials, backbones, out / "fronts.png"),
             "fronts_on_test": plot_confirmed_fronts(on_test, backbones, out / "fronts_on_test.png"),
             "effects": plot_effects(trials, backbones, out / "gamma_clusters.png")}
    for table_name, frame in tables.items():
        frame.to_csv(out / f"{table_name}.csv", index=False)
    every_run.to_csv(out / "confirmation_runs.csv", index=False)
    trials.drop(columns=["path", "checkpoint"], errors="ignore").to_csv(out / "search_trials.csv", index=False)
    reference_frame(refs).to_csv(out / "references.csv", index=False)
    curves.to_csv(out / "budget_curves.csv", index=False)
    if (folder / "study_config.json").resolve() != (out / "study_config.json").resolve():
        shutil.copyfile(folder / "study_config.json", out / "study_config.json")
    pieces = _sections(config, folder.name, runs, refs, trials, plots, tables, said + _dose_sentences(doses or {}),
                       icc_share_sentences(trials, backbones), command, _dose_pieces(doses or {}, out),
                       run_scope(trials, runs, every_run, front_runs or []))
    markdown = out / "findings.md"
    markdown.write_text(to_markdown_text(pieces))
    page = out / "findings.html"
    page.write_text(to_html_page(f"Study {folder.name}", pieces))
    return {"markdown": str(markdown), "html": str(page), "sentences": said + _dose_sentences(doses or {}),
            "plots": {k: v for k, v in plots.items() if v}}


def _by_metric(config: Any) -> str:
    """Which validation metric picked the best epoch, where it is not NDCG@10 (train.select_metric)."""
    chosen = chosen_on(config.train.select_metric)
    return f" (best by {chosen})" if chosen else ""


def _dose_sentences(doses: dict[str, dict[str, Any]]) -> list[str]:
    """Each dose-response's answer (as its report wrote it), named by backbone, for the lines
    `launch.py study` prints."""
    return [f"Dose-response ({backbone}): {sentence}" for backbone, report in doses.items()
            for sentence in report.get("answer", [])]

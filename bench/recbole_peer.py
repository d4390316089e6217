"""RecBole's SASRec beside ours: same data, same settings, our evaluation (issue 23, item 3).

RecBole (`recbole==1.2.1`) lives in its own environment (numpy < 2, pandas < 2.2, scipy < 1.12;
see docs/performance-recbole.md). This script runs there with the repository on PYTHONPATH:

    PYTHONPATH=$PWD nice -n 19 /work/recbole-env/bin/python bench/recbole_peer.py \
        --dataset ml-100k --seeds 42 --out docs/bench/recbole/ml-100k-42.json

Same data, exactly: our prepared dataset (5-core, time-ordered) is exported as RecBole atomic
files, each user's full sequence with timestamp = position in the sequence, so RecBole's
time-ordered leave-one-out split (LS valid_and_test, order TO) gives our train / valid / test
targets; the script asserts that every user's validation and test target equal ours before it
trains. No filtering on RecBole's side (ours is applied already).

Same settings as bench/time_to_quality.py's PROTOCOL: hidden 64, 2 layers, 1 head, inner (FFN)
size 64 as ours, MAX_ITEM_LIST_LENGTH 50, dropout 0.2 (hidden and attention), CE over the full
catalogue, no negative sampling, Adam 1e-3, batch 256, patience 5 on validation NDCG@10, epoch
cap, seed per run, one torch thread. RecBole trains with its own Trainer._train_epoch.

Same evaluation: after every epoch the RecBole model is scored with OUR evaluator
(model.evaluate.compute_ranks -> full_ranks: full catalogue, the whole input history masked, the
target never, pessimistic ties; model.metrics.rank_metrics), RecBole's item ids mapped to ours.
The curve holds [epoch, cumulative process CPU seconds (training + validation, from before
RecBole builds its dataset), validation NDCG@10], as time_to_quality.py records ours; test
metrics come from the best epoch's weights (a state_dict kept in memory), and are also written
provisionally at every new best, so a run stopped early keeps its best epoch's test numbers.
The JSON (--out, rewritten after every epoch) has time_to_quality.py's shape plus side
"recbole": `bench/time_to_quality.py --merge ours.json recbole.json` prints both sides.

`--smoke` (CI, the main venv, where RecBole is not installed): exports a small ml-100k subset,
reads it back and checks that a time-ordered leave-one-out split of the export gives our
targets; with RecBole importable it also trains 1 epoch of a tiny model on that subset.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

FIELDS = ("user_id:token", "item_id:token", "timestamp:float")
#: bench/time_to_quality.py's PROTOCOL in RecBole's names (ours: model/backbones/transformer.py,
#: whose feed-forward is hidden -> hidden, so inner_size = hidden_size)
PROTOCOL = {
    "hidden_size": 64, "inner_size": 64, "n_layers": 2, "n_heads": 1,
    "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "hidden_act": "gelu",
    "MAX_ITEM_LIST_LENGTH": 50, "loss_type": "CE", "train_neg_sample_args": None,
    "learning_rate": 0.001, "train_batch_size": 256, "stopping_step": 5,
}


# ---- export and split check (no RecBole needed) ---------------------------------------------
def export_atomic(data, folder: str | Path, name: str) -> Path:
    """Write `data`'s sequences as RecBole's `folder/name/name.inter`: one row per interaction,
    user token = our user index, item token = our item id, timestamp = position in the user's
    sequence (so ordering by time reproduces our order exactly)."""
    target = Path(folder) / name
    target.mkdir(parents=True, exist_ok=True)
    off = np.asarray(data.seq_offsets, dtype=np.int64)
    lengths = np.diff(off)
    users = np.repeat(np.arange(data.n_users, dtype=np.int64), lengths)
    positions = np.arange(off[-1], dtype=np.int64) - off[users]
    items = np.asarray(data.seq_items, dtype=np.int64)[:off[-1]]
    path = target / f"{name}.inter"
    with open(path, "w") as handle:
        handle.write("\t".join(FIELDS) + "\n")
        handle.writelines(f"{u}\t{i}\t{p}\n" for u, i, p in zip(users.tolist(), items.tolist(), positions.tolist()))
    return path


def read_atomic(path: str | Path) -> dict[int, list[int]]:
    """Each user's items ordered by timestamp, read back from an exported .inter file."""
    rows: dict[int, list[tuple[float, int]]] = {}
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if tuple(header) != FIELDS:
            raise ValueError(f"{path}: header {header}; expected {list(FIELDS)}")
        for line in handle:
            user, item, stamp = line.rstrip("\n").split("\t")
            rows.setdefault(int(user), []).append((float(stamp), int(item)))
    return {user: [item for _, item in sorted(pairs)] for user, pairs in rows.items()}


def split_mismatches(data, valid: dict[int, int], test: dict[int, int]) -> list[str]:
    """Users whose validation or test target (keyed by our user index, as our item ids) differ
    from ours, or who are missing; empty when the two splits agree."""
    problems = []
    ours_valid, ours_test = data.valid_targets, data.test_targets
    for user in range(data.n_users):
        for split, theirs, ours in (("valid", valid, ours_valid), ("test", test, ours_test)):
            if theirs.get(user) != int(ours[user]):
                problems.append(f"user {user} {split}: {theirs.get(user)} vs ours {int(ours[user])}")
    extra = sorted((set(valid) | set(test)) - set(range(data.n_users)))
    problems += [f"user {u}: not one of ours" for u in extra]
    return problems


def leave_one_out(sequences: dict[int, list[int]]) -> tuple[dict[int, int], dict[int, int]]:
    """A time-ordered leave-one-out split of read-back sequences: (valid, test) target per user."""
    return ({u: s[-2] for u, s in sequences.items() if len(s) >= 2},
            {u: s[-1] for u, s in sequences.items() if s})


# ---- RecBole side ---------------------------------------------------------------------------
def recbole_available() -> bool:
    try:
        import recbole  # noqa: F401
    except ImportError:
        return False
    return True


def recbole_config(folder: Path, name: str, seed: int, epochs: int, extra: dict):
    from recbole.config import Config

    settings = {
        **PROTOCOL, **extra,
        "data_path": str(folder), "checkpoint_dir": str(folder / "checkpoints"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": None, "item_inter_num_interval": None,
        "val_interval": None, "rm_dup_inter": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
        "epochs": epochs, "seed": seed, "reproducibility": True, "saved": False, "save_dataset": False,
        "save_dataloaders": False, "use_gpu": False, "device": "cpu", "worker": 0, "show_progress": False,
        "state": "WARNING",
    }
    argv, sys.argv = sys.argv, sys.argv[:1]        # RecBole's Config also reads --key=value from argv
    try:
        return Config(model="SASRec", dataset=name, config_dict=settings)
    finally:
        sys.argv = argv


def id_maps(dataset, data, subset: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ours -> RecBole item id [n_items + 2], RecBole -> ours item id [RecBole's n_items]);
    padding maps to padding (0) both ways. RecBole's items must be exactly ours 1..n_items
    (a user subset may lack some: those then score -inf, i.e. never rank above a target)."""
    tokens = dataset.field2id_token["item_id"]
    to_ours = np.zeros(len(tokens), dtype=np.int64)
    to_ours[1:] = [int(t) for t in tokens[1:]]
    to_theirs = np.zeros(data.n_items + 2, dtype=np.int64)
    to_theirs[to_ours[1:]] = np.arange(1, len(tokens))
    theirs, ours = sorted(to_ours[1:].tolist()), list(range(1, data.n_items + 1))
    if theirs != ours and not (subset and set(theirs) <= set(ours)):
        raise AssertionError("RecBole's item tokens are not exactly our items 1..n_items")
    return to_theirs, to_ours


def recbole_split(split_dataset, dataset) -> dict[int, int]:
    """The target of each user (our user index -> our item id) in a RecBole valid/test dataset."""
    users = split_dataset.inter_feat["user_id"].numpy()
    items = split_dataset.inter_feat["item_id"].numpy()
    user_tokens, item_tokens = dataset.field2id_token["user_id"], dataset.field2id_token["item_id"]
    if len(set(users.tolist())) != len(users):
        raise AssertionError("a user has more than one target in a RecBole split")
    return {int(user_tokens[u]): int(item_tokens[i]) for u, i in zip(users.tolist(), items.tolist())}


def score_function(model, to_theirs: np.ndarray, to_ours: np.ndarray, n_items: int):
    """score_fn for model.evaluate: our left-padded inputs -> RecBole's left-aligned sequences,
    its scores over its items put in our columns (0 and n_items + 1 stay -inf, ignored)."""
    import torch

    theirs = torch.as_tensor(to_theirs)
    columns = torch.as_tensor(to_ours[1:])

    def score(users, inputs):
        seq = theirs[inputs]
        lengths = (seq > 0).sum(1)
        width = seq.shape[1]
        shift = (torch.arange(width)[None, :] + (width - lengths)[:, None]) % width
        aligned = seq.gather(1, shift)                      # left-padded -> left-aligned
        out = model.forward(aligned, lengths.clamp(min=1))
        logits = out @ model.item_embedding.weight[1:].T
        scores = torch.full((inputs.shape[0], n_items + 2), -float("inf"))
        scores[:, columns] = logits
        return scores

    return score


def our_metrics(model, data, split: str, maps, max_len: int) -> dict[str, float]:
    import torch

    from model.evaluate import compute_ranks
    from model.metrics import rank_metrics

    model.eval()
    with torch.no_grad():
        ranks = compute_ranks(score_function(model, *maps, data.n_items), data, split, max_len,
                              protocols=("full",))["full"]
    return rank_metrics(ranks, (10,))


def run_one(args: argparse.Namespace, data, seed: int, folder: Path, name: str, out_runs: list) -> dict:
    import torch

    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.autograd.set_detect_anomaly(False)     # RecBole's sequential models switch it on at import
    start = time.process_time()
    paused = 0.0                                 # CPU s spent on provisional test metrics (not counted)
    config = recbole_config(folder, name, seed, args.epochs, args.extra)
    init_seed(seed, True)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    problems = split_mismatches(data, recbole_split(valid_data.dataset, dataset),
                                recbole_split(test_data.dataset, dataset))
    if problems:
        raise AssertionError(f"RecBole's split differs from ours for {len(problems)} targets: {problems[:5]}")
    maps = id_maps(dataset, data, subset=bool(args.users))
    init_seed(seed, True)
    model = SASRec(config, train_data.dataset).to("cpu")
    torch.autograd.set_detect_anomaly(False)
    here = os.getcwd()
    os.chdir(folder)                             # its Trainer opens ./log_tensorboard: keep it out of the repo
    try:
        trainer = Trainer(config, model)
    finally:
        os.chdir(here)
    samples = len(train_data.dataset)
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    setup_s = time.process_time() - start
    run = {"side": "recbole", "implementation": "RecBole 1.2.1 SASRec", "windows": "prefixes", "seed": seed,
           "stride": None, "batch_size": config["train_batch_size"], "samples": samples, "targets": samples,
           "steps": math.ceil(samples / config["train_batch_size"]), "setup_cpu_s": round(setup_s, 2),
           "split_checked": True, "anomaly_detection": torch.is_anomaly_enabled(), "finished": False, "curve": []}
    best, best_state, waited = -1.0, None, 0
    for epoch in range(1, args.epochs + 1):
        trainer._train_epoch(train_data, epoch - 1, show_progress=False)
        valid = our_metrics(model, data, "valid", maps, max_len)
        now = time.process_time() - start - paused
        run["curve"].append([epoch, round(now, 2), round(valid["ndcg_10"], 5)])
        print(f"  recbole seed {seed} epoch {epoch}: {now:.0f} CPU s, valid NDCG@10 {valid['ndcg_10']:.4f}",
              file=sys.stderr, flush=True)
        if valid["ndcg_10"] > best:
            best, waited = valid["ndcg_10"], 0
            best_state = copy.deepcopy(model.state_dict())
            t0 = time.process_time()
            test = our_metrics(model, data, "test", maps, max_len)       # provisional: a stopped run keeps it
            paused += time.process_time() - t0
            run.update(best_epoch=epoch, valid_ndcg_10=valid["ndcg_10"], valid_hit_10=valid["hit_10"],
                       test_ndcg_10=test["ndcg_10"], test_hit_10=test["hit_10"])
        else:
            waited += 1
        run.update(epochs=epoch, cpu_s=round(now, 2))
        if args.out:
            write_runs(args.out, [*out_runs, run])
        if waited >= config["stopping_step"]:
            break
    model.load_state_dict(best_state)
    test = our_metrics(model, data, "test", maps, max_len)
    run.update(test_ndcg_10=test["ndcg_10"], test_hit_10=test["hit_10"], finished=True,
               stopped="early stopping" if waited >= config["stopping_step"] else "epoch cap")
    print(f"  recbole seed {seed}: best epoch {run['best_epoch']}/{run['epochs']}, "
          f"test NDCG@10 {run['test_ndcg_10']:.4f}", file=sys.stderr, flush=True)
    return run


# ---- output ---------------------------------------------------------------------------------
def command_line() -> str:
    """The command as run: the RecBole environment's interpreter, the repository on PYTHONPATH."""
    return C.command_line().replace(".venv/bin/python", f"PYTHONPATH=. {sys.executable}", 1)


def write_runs(path: str, runs: list[dict]) -> None:
    C.write_atomic(Path(path), json.dumps({"command": command_line(), "machine": C.machine(),
                                           "runs": runs}, indent=1))


def load_data(args: argparse.Namespace):
    """Our prepared dataset (from the cache that bench/time_to_quality.py uses); `--prepared`
    names a folder directly."""
    if args.prepared:
        from datasets.cache import load_prepared

        return load_prepared(args.prepared)
    from datasets.config import DataConfig
    from datasets.prepare import prepare_dataset

    return prepare_dataset(DataConfig(name=args.dataset, data_root=args.data_root, cache_dir=args.cache_dir),
                           progress=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "amazon-scientific", "amazon-beauty"))
    p.add_argument("--seeds", default="42", help="comma-separated ints")
    p.add_argument("--epochs", type=int, default=60, help="epoch cap")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--users", type=int, default=0, help="only the first N users (0: all)")
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--prepared", default="", help="a prepared dataset folder (skips the cache look-up)")
    p.add_argument("--work-dir", default="", help="where the atomic files go (default: a temporary folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="RecBole config override (value read as JSON, else a string)")
    p.add_argument("--out", default="", help="write the runs (curves included) to this JSON after every epoch")
    p.add_argument("--smoke", action="store_true", help="small ml-100k subset; trains only if RecBole is installed")
    args = p.parse_args(argv)
    if args.smoke:
        args.dataset, args.seeds, args.epochs, args.users = "ml-100k", "42", 1, args.users or 100
        args.set = ["hidden_size=16", "inner_size=16", "MAX_ITEM_LIST_LENGTH=20", *args.set]
    args.seed_list = C.parse_seeds(args.seeds)
    if args.epochs < 1:
        p.error(f"--epochs: got {args.epochs}; allowed: >= 1")
    args.extra = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set: got {item!r}; expected KEY=VALUE")
        try:
            args.extra[key] = json.loads(value)
        except json.JSONDecodeError:
            args.extra[key] = value
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = C.load_average()
    C.quiet_environment()
    C.set_torch_threads(args.threads)
    data = load_data(args)
    if args.users:
        data = data.first_users(min(args.users, data.n_users))
    name = f"{args.dataset}-peer"
    with tempfile.TemporaryDirectory(prefix="recbole-peer-") as tmp:
        folder = Path(args.work_dir or tmp)
        path = export_atomic(data, folder, name)
        problems = split_mismatches(data, *leave_one_out(read_atomic(path)))
        if problems:
            print(f"the export's leave-one-out split differs from ours: {problems[:5]}", file=sys.stderr)
            return 1
        notes = [f"{args.dataset}: {data.n_users} users, {data.n_items} items, {data.n_interactions} "
                 f"interactions exported to {path.name}; leave-one-out of the export = our valid/test "
                 f"targets for all {data.n_users} users"]
        runs: list[dict] = []
        if not recbole_available():
            notes.append("recbole is not installed in this environment: nothing trained "
                         "(install it in its own venv: docs/performance-recbole.md)")
        else:
            for seed in args.seed_list:
                runs.append(run_one(args, data, seed, folder, name, runs))
                if args.out:
                    write_runs(args.out, runs)
            notes.append("RecBole's own split checked against ours for every user")
    print(C.header("RecBole SASRec, our evaluation", "cpu", notes, load))
    if runs:
        from time_to_quality import summary_table
        print(C.markdown_table(*summary_table(runs)))
    else:
        print(C.markdown_table(["dataset", "users", "items", "interactions", "split equal to ours", "trained"],
                               [[args.dataset, data.n_users, data.n_items, data.n_interactions, "yes",
                                 "no (recbole not installed)"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How well `model.icc_share` sets the share of the loss ICC carries, and what gamma it takes.

For each backbone x recommendation loss x target share: build the run (gamma calibrated at
initialisation on seeded training batches), train a few epochs and print the calibrated gamma and
the share ICC actually carried over each epoch (`share_icc`). The gammas show why a raw gamma range
is blind to the loss scale: the same share needs a ~5x larger gamma under full softmax than under
BCE.

    python bench/icc_share.py --dataset ml-100k --epochs 3
    python bench/icc_share.py --smoke      # seconds: 100 users, 1 epoch, two targets (CI)
"""

from __future__ import annotations

import argparse

import _common as C

SMOKE = dict(users=100, epochs=1, shares="0.05,0.5", backbones="sasrec", losses="ce")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "amazon-scientific"))
    p.add_argument("--data-root", default=C.DEFAULT_DATA_ROOT)
    p.add_argument("--cache-dir", default=C.DEFAULT_CACHE_DIR)
    p.add_argument("--users", type=int, default=0, help="first N users only (0 = all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--shares", default="0.01,0.05,0.2,0.5")
    p.add_argument("--backbones", default="sasrec,gru4rec")
    p.add_argument("--losses", default="ce,bce")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    return C.parse_with_smoke(p, SMOKE)


def main() -> None:
    args = parse_args()
    load, device = C.start_or_exit(args)
    from model.pipeline import build_trainer

    data_sets, label = C.data_overrides(args.dataset, args.data_root, args.cache_dir)
    common = [*data_sets, "model.hidden_size=32", "model.max_len=50", "model.num_blocks=1", "model.dropout=0.2",
              "clusters.n_clusters=32", "clusters.silhouette_sample=0", f"train.device={device}",
              "train.batch_size=128"]
    data = C.prepare(C.make_config(common))
    data = data.first_users(args.users) if 0 < args.users < data.n_users else data
    rows = []
    for backbone in C.parse_list(args.backbones, C.BACKBONES, "--backbones"):
        for loss in C.parse_list(args.losses, ("ce", "bce"), "--losses"):
            for share in (float(s) for s in args.shares.split(",")):
                config = C.make_config([*common, f"model.backbone={backbone}", f"model.loss={loss}",
                                        f"model.icc_share={share}"])
                trainer = build_trainer(config, data)
                realised = [trainer.train_epoch().loss_shares["icc"] for _ in range(args.epochs)]
                rows.append((backbone, loss, share, trainer.icc_gamma,
                             ", ".join(f"{r:.3f}" for r in realised)))
    print(C.header(f"icc_share calibration on {args.dataset} ({data.n_users} users, {label})", device,
                   [f"LLM-ESR, hidden 32, 1 block, max_len 50, dropout 0.2, KMeans 32, batch 128, "
                    f"{args.epochs} epochs"], load))
    print(C.markdown_table(("backbone", "loss", "target share", "calibrated gamma",
                            "realised share per epoch"), rows))


if __name__ == "__main__":
    main()

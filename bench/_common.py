"""Shared helpers of the bench/ scripts: configs, datasets, timing, machine and Markdown tables.

Benchmarks print Markdown tables headed by the date, the machine (CPU model and cores or GPU
name, load average, because the development machine is shared) and the exact command, so a
table pasted into docs/performance.md says where and how it was made.
"""

from __future__ import annotations

import io
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:            # scripts run as `python bench/X.py` from the repo root
    sys.path.insert(0, str(REPO))

from runtime import quiet_environment, set_torch_threads, write_atomic  # noqa: E402,F401  (the entry points' set-up)

DEFAULT_DATA_ROOT = str(REPO.parent / "shared" / "data")
DEFAULT_CACHE_DIR = str(REPO / ".cache" / "test")
DATASETS = ("ml-100k", "amazon-scientific", "amazon-beauty", "llmesr-yelp")
BACKBONES = ("sasrec", "bert4rec", "gru4rec")
RANDOM_EMB_LABEL = "random embeddings (timing only)"
YELP_EMB_DIM = 1536                       # LLM-ESR's ada-002 item embeddings are 1536 wide


# ---- environment ---------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine(device: str = "cpu") -> str:
    """One line describing where the numbers were measured."""
    import torch

    cpu = f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(torch.device(device))} (host: {cpu})"
    return f"CPU {cpu}"


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])


def header(title: str, device: str = "cpu", notes: Iterable[str] = (), load_at_start: str = "") -> str:
    """Markdown heading with date, machine, load average (start and end) and command."""
    lines = [f"### {title}", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- machine: {machine(device)}",
             f"- load average (1/5/15 min): start {load_at_start or 'n/a'}, end {load_average()}",
             f"- command: `{command_line()}`"]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def emit(table: str, out: str = "") -> None:
    """Print a finished table, and write it to `out` (a docs page) when given."""
    print(table)
    if out:
        write_atomic(Path(out), table + "\n")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v)

    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


# ---- timing --------------------------------------------------------------------------------
def synchronize(device: Any) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def process_clock(device: Any) -> Callable[[], float]:
    """The clock a benchmark reads: this process's CPU seconds on CPU (a loaded, shared machine
    does not depress one side of a comparison only), wall seconds on a GPU (synchronize around)."""
    return time.perf_counter if str(device).startswith("cuda") else time.process_time


def matmul_gflops(device: str, size: int = 1024, seconds: float = 1.0, bf16: bool = False) -> float:
    """GFLOP/s of size x size matmuls at the current thread count, per `process_clock` second, in
    float32 or under bfloat16 autocast (`bf16`)."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
        for _ in range(2):                # warm-up: kernels, AMX tiles
            a @ b
        clock = process_clock(device)
        synchronize(device)
        start, n = clock(), 0
        while clock() - start < seconds:
            a @ b
            n += 1
            synchronize(device)
    return 2 * size ** 3 * n / (clock() - start) / 1e9


def timed(fn: Callable[[], Any], device: Any = "cpu", repeats: int = 1, warmup: int = 0) -> tuple[float, Any]:
    """Median wall seconds of `repeats` calls (after `warmup` untimed ones) and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# ---- configs and data ----------------------------------------------------------------------
def random_embedding_file(cache_dir: str, n_rows: int, dim: int = YELP_EMB_DIM, seed: int = 0) -> str:
    """A seeded Gaussian item-embedding matrix saved once as .npy (same bytes -> same data cache key)."""
    import numpy as np

    path = Path(cache_dir) / "bench" / f"random-emb-{n_rows}x{dim}-seed{seed}.npy"
    if not path.is_file():
        matrix = np.random.default_rng(seed).standard_normal((n_rows, dim), dtype=np.float32)
        buffer = io.BytesIO()
        np.save(buffer, matrix)
        write_atomic(path, buffer.getvalue())
    return str(path)


def yelp_item_count(data_root: str) -> int:
    """Largest item id of llmesr-yelp's inter.txt (the embedding matrix needs that many rows)."""
    import numpy as np

    pairs = np.loadtxt(Path(data_root) / "llmesr-yelp" / "inter.txt", dtype=np.int64, ndmin=2)
    return int(pairs[:, 1].max())


def data_overrides(dataset: str, data_root: str, cache_dir: str) -> tuple[list[str], str]:
    """`--set`-style data overrides for a benchmark dataset and a label for its embeddings."""
    common = [f"data.data_root={data_root}", f"data.cache_dir={cache_dir}"]
    if dataset in ("ml-100k", "amazon-scientific", "amazon-beauty"):
        return [f"data.name={dataset}", *common], "MiniLM item text"
    if dataset == "llmesr-yelp":
        emb = random_embedding_file(cache_dir, yelp_item_count(data_root))
        # LLM-ESR's handled file is filtered already: no second k-core, keep all 192k interactions
        return ["data.name=llmesr", f"data.path={Path(data_root) / 'llmesr-yelp'}",
                "data.user_core=1", "data.item_core=1",
                "data.embedder=file", f"data.embedding_path={emb}", *common], RANDOM_EMB_LABEL
    raise SystemExit(f"--datasets: unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}")


def make_config(overrides: Iterable[str]) -> Any:
    """The typed root Config from `section.key=value` overrides (the same path as launch.py)."""
    from tuning.config import load_config

    return load_config(None, list(overrides))


def prepare(config: Any) -> Any:
    from datasets.prepare import prepare_dataset

    return prepare_dataset(config.data, progress=False)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """Comma-separated ints, at least one; a bad value exits with the flag, the value and what is allowed."""
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise SystemExit(f"{flag}: got {text!r}; allowed: comma-separated ints (at least one)")
    return seeds


def parse_list(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise SystemExit(f"{flag}: got {text!r}; allowed: a comma-separated subset of {', '.join(allowed)}")
    return items


def start(args: Any) -> tuple[str, str | None]:
    """Common start of a benchmark: (load average, device name), or device None after printing
    why the requested device cannot be used."""
    load = load_average()
    quiet_environment()
    set_torch_threads(args.threads)
    from model.device import resolve_device

    try:
        return load, str(resolve_device(args.device))
    except ValueError as exc:
        print(f"--device {args.device}: {exc}", file=sys.stderr)
        return load, None


def parse_with_smoke(parser: Any, smoke: dict[str, Any]) -> Any:
    """Parse the script's arguments with a `--smoke` flag that swaps in `smoke`'s values (a
    tiny run that checks the script works, run by tests/test_bench.py)."""
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the script works")
    args = parser.parse_args()
    if args.smoke:
        for key, value in smoke.items():
            setattr(args, key, value)
    return args


def start_or_exit(args: Any) -> tuple[str, str]:
    """`start`, exiting with status 2 when the requested device cannot be used."""
    load, device = start(args)
    if device is None:
        raise SystemExit(2)
    return load, device


"""``python -m vocalprint.tools.notebooks --out artifacts/notebooks``: execute the analyst notebooks.

Each ``notebooks/NN-*.ipynb`` runs top to bottom in a fresh kernel of *this* interpreter (a
kernelspec written to a temporary folder, so no user- or system-wide Jupyter setup is read or
needed), with ``DATA_DIR`` and ``VOCALPRINT_ARTIFACTS`` set for its parameter cell. The executed
copy goes to ``<out>/<name>.ipynb`` and every figure to ``<out>/<name>/figNN.png``.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("vocalprint.tools.notebooks")
SRC = Path(__file__).resolve().parents[2]
NOTEBOOKS = SRC.parent / "notebooks"
KERNEL = "vocalprint-python3"


def _kernel_manager_class(kernel_dir: Path):
    """An AsyncKernelManager that only knows the kernelspec in ``kernel_dir``."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class _KM(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self):
            return KernelSpecManager(kernel_dirs=[str(kernel_dir)])

    return _KM


def write_kernelspec(folder: Path) -> Path:
    """A kernelspec for the running interpreter in ``folder/<KERNEL>/``; returns ``folder``."""
    d = Path(folder) / KERNEL
    d.mkdir(parents=True, exist_ok=True)
    (d / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"vocalprint ({sys.executable})", "language": "python",
        "metadata": {"debugger": False}}))
    return Path(folder)


def kernel_env(data: Path | None, artifacts: Path) -> dict[str, str]:
    """This process's environment plus the notebook parameters and this package on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(SRC)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(SRC)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["VOCALPRINT_ARTIFACTS"] = str(Path(artifacts).resolve())
    if data is not None:
        env["DATA_DIR"] = str(Path(data).resolve())
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # never Agg: figures must reach the notebook
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def save_figures(nb, folder: Path) -> list[Path]:
    """Write every PNG output of an executed notebook to ``folder/figNN.png``."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            png = o.get("data", {}).get("image/png")
            if png:
                folder.mkdir(parents=True, exist_ok=True)
                p = folder / f"fig{len(out) + 1:02d}.png"
                p.write_bytes(base64.b64decode(png))
                out.append(p)
    return out


def run_notebook(path: Path, out_dir: Path, *, env: dict, kernel_dir: Path, timeout: int = 900) -> dict:
    """Execute one notebook; write the executed copy (also on failure) and its figures.

    Returns {"notebook", "seconds", "figures", "error"}; ``error`` is "" on success.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, startup_timeout=180, kernel_name=KERNEL, allow_errors=False,
                            kernel_manager_class=_kernel_manager_class(kernel_dir),
                            resources={"metadata": {"path": str(SRC.parent)}})
    t0 = time.perf_counter()
    err = ""
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        err = str(e)
    except Exception as e:  # kernel died, timeout, ...: still write what ran
        err = f"{type(e).__name__}: {e}"
    secs = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / path.name
    nbformat.write(nb, dest)
    figs = save_figures(nb, out_dir / path.stem)
    return {"notebook": str(dest), "seconds": round(secs, 1), "figures": [str(f) for f in figs], "error": err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vocalprint.tools.notebooks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="artifacts/notebooks", help="folder for executed notebooks and figures")
    ap.add_argument("--data", default=os.environ.get("DATA_DIR"), help="data folder (default $DATA_DIR)")
    ap.add_argument("--artifacts", default=os.environ.get("VOCALPRINT_ARTIFACTS", "artifacts"))
    ap.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the NN-*.ipynb to run")
    ap.add_argument("--only", default="", help="comma-separated name prefixes, e.g. 01,02 (default all)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("VOCALPRINT_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    books = sorted(Path(args.notebooks).glob("[0-9][0-9]-*.ipynb"))
    if args.only:
        books = [b for b in books if any(b.name.startswith(p) for p in args.only.split(","))]
    if not books:
        log.error("no notebooks NN-*.ipynb in %s", args.notebooks)
        return 2
    env = kernel_env(Path(args.data) if args.data else None, Path(args.artifacts))
    out = Path(args.out)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="vocalprint-kernel-") as tmp:
        kdir = write_kernelspec(Path(tmp))
        for b in books:
            r = run_notebook(b, out, env=env, kernel_dir=kdir, timeout=args.timeout)
            if r["error"]:
                failed += 1
                log.error("%s failed after %.1f s (executed copy: %s):\n%s", b.name, r["seconds"],
                          r["notebook"], r["error"][-3000:])
            else:
                log.info("%s: %.1f s, %d figures -> %s", b.name, r["seconds"], len(r["figures"]), r["notebook"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

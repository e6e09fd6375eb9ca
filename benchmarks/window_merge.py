"""Merges window-suite runs made one dataset at a time (each with every baseline in its own run) into one
window.json / window.md and the per-workload PNGs, recomputing the targets over all workloads.

    python benchmarks/window_merge.py OUT_DIR run1/window.json run2/window.json ...
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from suites import window  # noqa: E402


def _portable(cmd: str) -> str:
    """A run's command without this machine's output folder."""
    return re.sub(r"--out \S+", "--out <dir>", cmd)


def merge(docs: list) -> dict:
    first = docs[0]
    res = {"options": dict(first["results"]["options"]), "workloads": {}, "skipped": {}}
    vp = res["options"].get("vss_python")
    if vp and vp.startswith(os.path.expanduser("~")):
        res["options"]["vss_python"] = "~" + vp[len(os.path.expanduser("~")):]
    for d in docs:
        res["workloads"].update(d["results"]["workloads"])
        res["skipped"].update(d["results"].get("skipped", {}))
    res["options"]["workloads"] = list(res["workloads"])
    res["targets"] = window.evaluate_targets(res)
    res["anomalies"] = [a for r in res["workloads"].values() for a in r["anomalies"]]
    return {"suite": "window", "quick": any(d["quick"] for d in docs),
            "command": "; ".join(_portable(d["command"]) for d in docs)
                       + "; python benchmarks/window_merge.py benchmarks/results <dir>/window.json ...",
            "started": first["started"], "duration_s": sum(d["duration_s"] for d in docs),
            "machine": first["machine"], "results": res}


def main(argv) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    out = Path(argv[1])
    docs = [json.loads(Path(p).read_text()) for p in argv[2:]]
    doc = merge(docs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "window.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "window.md").write_text(window.to_markdown(doc) + "\n")
    for p in window.plot(doc, out):
        print("wrote", p)
    print("wrote", out / "window.json", out / "window.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

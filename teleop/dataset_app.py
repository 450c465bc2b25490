"""``hilr dataset summary|export|import <src> [dst]``: inspect or convert a dataset (config: dataset.yaml).

``export`` writes the LeRobotDataset v2.1 layout and ``import`` reads it back
(``robot_env.lerobot_format``); ``summary`` prints the counts of a hilr dataset.
"""

from __future__ import annotations

import json

from robot_env.app import UserError, hydra_app, to_container


@hydra_app("dataset")
def main(cfg) -> int:
    """Entry point of ``hilr dataset``; prints the JSON summary last."""
    from robot_env.dataset import summarize
    from robot_env.lerobot_format import export_lerobot, import_lerobot

    c = to_container(cfg)
    if c["what"] == "summary":
        result = summarize(c["src"])
    elif c["what"] in ("export", "import"):
        if not c["dst"]:
            raise UserError(f"hilr dataset {c['what']} needs a destination: hilr dataset {c['what']} <src> <dst>")
        if c["what"] == "export":
            result = export_lerobot(c["src"], c["dst"], video=c["video"], robot_type=c["robot_type"])
        else:
            result = import_lerobot(c["src"], c["dst"])
    else:
        raise UserError(f"unknown dataset job {c['what']!r}; choose summary, export or import")
    print(json.dumps(result))
    return 0

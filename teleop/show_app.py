"""``hilr show <dataset> [episode]``: a recorded episode as a contact-sheet PNG or an mp4 (config: show.yaml)."""

from __future__ import annotations

import json

from robot_env.app import hydra_app, run_dir, to_container


@hydra_app("show")
def main(cfg) -> int:
    """Entry point of ``hilr show``; prints the JSON summary (with the written file) last."""
    from robot_env.episode_view import show_episode

    c = to_container(cfg)
    out = c["out"] or run_dir() / f"episode_{int(c['episode']):06d}.{c['format']}"
    summary = show_episode(c["dataset"], int(c["episode"]), c["format"], out, c["frames"], c["fps"])
    print(json.dumps(summary))
    return 0

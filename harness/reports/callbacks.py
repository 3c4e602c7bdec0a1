"""Hydra callback: after a multirun, tabulate exactly the sweep's child runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class LeaderboardCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not (config.tracking.enabled and config.leaderboard.print_after_run):
            return
        from srarena.harness import tracking
        from srarena.harness.reports.leaderboard import publish_leaderboard

        tracking.configure(config)
        exp_id = tracking.experiment_id(config)
        # HydraConfig is unset here; the callback's config still carries the hydra node.
        sweep_dir = str(Path(config.hydra.sweep.dir).resolve())
        parent = tracking.sweep_parent(config, exp_id, sweep_dir, f"sweep {Path(sweep_dir).name}")
        publish_leaderboard(config, parent_run_id=parent)

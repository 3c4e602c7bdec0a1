"""``srarena [COMMAND] [hydra overrides]``: one console script, one Hydra app per command.

Each command has a primary config ``conf/<command>.yaml`` and a function ``(cfg) -> exit code``.
Hydra has no sub-commands, so the first word selects the app before Hydra parses the rest.
Errors meant for users (:class:`srarena.harness.errors.SrarenaError`, missing weights, bad method
configuration) are printed as one clear message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Callable

from srarena import PACKAGE_ROOT

CONF_DIR = PACKAGE_ROOT / "conf"

# command -> (primary config, "module:function")
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "srarena.harness.app:run"),
    "prepare": ("prepare", "srarena.harness.prepare:run_prepare"),
    "train": ("train", "srarena.harness.training.app:run_train"),
    "report": ("report", "srarena.harness.reports.app:run_report"),
    "gate": ("gate", "srarena.harness.reports.gate:run_gate"),
    "weights": ("weights", "srarena.harness.weights_cli:run_weights"),
}
# Positional words some commands take, turned into an override (`weights status` -> action=status).
POSITIONAL = {"weights": "action", "gate": "action"}

_GROUP_OVERRIDE = re.compile(r"^\+{0,2}(?P<group>[a-z_]+)=(?P<value>[^=]*)$")


def fail(message: str, code: int = 2) -> None:
    print(f"srarena: error: {message}", file=sys.stderr)
    sys.exit(code)


def check_group_choices(args: list[str]) -> None:
    """Reject ``method=nope`` with the list of choices before Hydra prints its own stack."""
    for arg in args:
        m = _GROUP_OVERRIDE.match(arg)
        if not m:
            continue
        group_dir = CONF_DIR / m["group"]
        if not group_dir.is_dir() or m["value"].startswith("["):
            continue  # not a config group, or a list value (e.g. report=[a,b]) Hydra checks itself
        available = sorted(p.stem for p in group_dir.glob("*.yaml"))
        for value in m["value"].split(","):
            value = value.strip()
            if value and not value.startswith(("choice(", "range(", "glob(")) and value not in available:
                fail(
                    f"unknown {m['group']} {value!r}. Available: {', '.join(available)}.\n"
                    f"Add one with a module and conf/{m['group']}/{value}.yaml (see README: 'Adding a method')."
                )


def load_command(target: str) -> Callable:
    module, func = target.split(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        fail(f"command entry point {target} is not available in this installation ({e})")
        raise  # unreachable; keeps type checkers quiet


def user_errors() -> tuple[type[BaseException], ...]:
    from srarena.harness.errors import SrarenaError
    from srarena.harness.weights import MissingWeightsError
    from srarena.methods.base import MethodError

    errors: list[type[BaseException]] = [SrarenaError, MissingWeightsError, MethodError]
    try:
        from hydra.errors import InstantiationException
        from omegaconf.errors import MissingMandatoryValue

        errors += [InstantiationException, MissingMandatoryValue]
    except ImportError:
        pass
    return tuple(errors)


def _explain(e: BaseException) -> str:
    # Hydra wraps errors raised in a _target_'s constructor; show the user's error, not the wrapper.
    cause = e.__cause__ or e.__context__
    from srarena.harness.errors import SrarenaError

    while cause is not None and not isinstance(cause, SrarenaError) and (cause.__cause__ or cause.__context__):
        cause = cause.__cause__ or cause.__context__
    text = str(cause) if isinstance(cause, SrarenaError) else str(e)
    if "Missing mandatory value" in text:
        key = text.split(":")[-1].strip().splitlines()[0]
        text += f"\nSet it on the command line, e.g. `{key}=...`."
    return text


def main(argv: list[str] | None = None) -> None:
    import hydra

    args = list(sys.argv[1:] if argv is None else argv)
    command = "run"
    if args and args[0] in COMMANDS:
        command = args.pop(0)
    elif args and not args[0].startswith("-") and "=" not in args[0]:
        fail(f"unknown command {args[0]!r}. Commands: {', '.join(COMMANDS)} (default: run)")
    if command in POSITIONAL and args and "=" not in args[0] and not args[0].startswith("-"):
        args[0] = f"{POSITIONAL[command]}={args[0]}"
    check_group_choices(args)
    config_name, target = COMMANDS[command]
    func = load_command(target)
    errors = user_errors()
    exit_code = {"code": 0}

    def task(cfg) -> None:
        try:
            # a multirun exits with the worst job's code (one job whose images all failed: 1)
            exit_code["code"] = max(exit_code["code"], int(func(cfg) or 0))
        except errors as e:
            fail(_explain(e))

    sys.argv = [sys.argv[0], *args]
    hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)()
    sys.exit(exit_code["code"])


if __name__ == "__main__":
    main()

"""Every option of every `fgvc` subcommand (flags, dest, default, choices, nargs, help) as JSON: run it in two trees
and diff the outputs to show that a change keeps the command line (PYTHONPATH=OLD_TREE python tests/cli_options.py)."""

import argparse
import json
import sys

try:
    from fgvc.apps.cli import build_parser
except ImportError:  # a tree from before the package was arranged by layer
    from fgvc.cli import build_parser


def describe(parser: argparse.ArgumentParser) -> dict:
    """Each action of ``parser``, and of its subcommands, by its flags."""
    out: dict = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out["subcommands"] = {name: describe(sub) for name, sub in action.choices.items()}
        elif not isinstance(action, argparse._HelpAction):
            out[",".join(action.option_strings) or action.dest] = {
                "dest": action.dest, "default": repr(action.default), "choices": repr(action.choices),
                "nargs": repr(action.nargs), "required": action.required, "help": action.help,
                "type": repr(getattr(action.type, "__name__", action.type))}
    return out


if __name__ == "__main__":
    json.dump(describe(build_parser()), sys.stdout, indent=1, sort_keys=True)

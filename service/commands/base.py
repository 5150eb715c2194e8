"""What the command modules share."""

from __future__ import annotations

import argparse
from typing import TypeAlias

# `add_subparsers()`'s result; argparse names no public type for it (generic for type checkers only)
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def setting_help(name: str) -> str:
    """A flag's help for a default taken from a setting: `default HOTPOSE_X, else <the setting's default>`."""
    from hotpose.service.settings import Settings

    return f"default HOTPOSE_{name.upper()}, else {Settings.model_fields[name].default}"

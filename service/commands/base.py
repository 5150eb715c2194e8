"""What the command modules share."""

from __future__ import annotations

import argparse
from typing import TypeAlias

# `add_subparsers()`'s result; argparse names no public type for it (generic for type checkers only)
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

from __future__ import annotations

import pytest

from service.cli import build_parser


def test_parser_commands() -> None:
    p = build_parser()
    args = p.parse_args(["bench", "lifter", "--batch", "1", "--rounds", "2"])
    assert args.batch == [1] and args.rounds == 2
    with pytest.raises(SystemExit):
        p.parse_args(["bench"])

"""Subcommands of the ``strokeseg`` command line, listed explicitly in the order of ``--help``."""

from __future__ import annotations

from strokeseg.commands import check, evaluate, export, predict, train

COMMANDS: tuple = (check, train, evaluate, predict, export)

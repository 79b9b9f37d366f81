"""Subcommands of the ``strokeseg`` command line, listed explicitly in the order of ``--help``."""

from __future__ import annotations

from strokeseg.commands import (
    benchmark,
    bids,
    check,
    demo,
    evaluate,
    export,
    gather,
    predict,
    synth,
    train,
)

COMMANDS: tuple = (demo, synth, check, train, evaluate, predict, gather, bids, export, benchmark)

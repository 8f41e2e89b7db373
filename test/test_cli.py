"""The `unified-perception` command lists exactly the subcommands that exist and can run."""

from __future__ import annotations

import argparse
import importlib

import pytest

from unified_perception.cli import SUBCOMMANDS, build_parser


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_listed_subcommand_has_a_module_with_arguments_and_main(name: str) -> None:
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    assert callable(module.main)


def test_the_description_names_the_subcommands_and_nothing_else() -> None:
    description = build_parser().description
    listed = description.split("Commands: ")[1].split(" (")[0].split(", ")
    assert listed == list(SUBCOMMANDS)

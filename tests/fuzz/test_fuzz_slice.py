"""The fast slice of the fuzzing run in `make test`: every target, seeds and mutations.

`make fuzz` runs the same targets under atheris (coverage-guided, a million cases
each); this slice keeps every target honest on each commit: the seeds, random bytes,
and hypothesis-chosen mutations of the seeds (byte flips, insertions, deletions,
splices, truncations) may raise only the project's own errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from all_targets import all_targets
from harness import FuzzTarget, check_one
from mutations import mutated

TARGETS = all_targets()
EXAMPLES = 150


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_raise_only_project_errors(name: str) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    assert seeds, f"{name} has no seed corpus"
    for seed in seeds:
        check_one(target, seed)


def _fuzz(target: FuzzTarget) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(
        st.one_of(
            mutated(target.seeds(), target.max_len),
            st.binary(max_size=min(target.max_len, 512)),
        )
    )
    def run(data: bytes) -> None:
        check_one(target, data)

    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutations_raise_only_project_errors(name: str) -> None:
    _fuzz(TARGETS[name])

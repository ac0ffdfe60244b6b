"""The bench's command line: --only names phases, and a name that is no phase is refused."""

import pytest

from bench.params import parse_args, runs


def test_only_runs_the_phases_it_names_and_their_aliases():
    params = parse_args(["--only", "a, b,notify"])
    assert [phase for phase in "abcdh" if runs(params, phase)] == ["a", "b", "h"]


def test_without_only_every_phase_runs():
    params = parse_args([])
    assert all(runs(params, phase) for phase in "abcdefghiklm")


@pytest.mark.parametrize("only", ["ab", "a,x", "j"])
def test_a_name_that_is_no_phase_is_refused_with_the_valid_names(only, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--only", only])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--only: no phase named" in error and "e.g. --only a,b" in error

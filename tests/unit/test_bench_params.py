"""The bench's command line: --only names phases, and a name that is no phase is refused; a
partial run writes its results beside the full run's file, not over it."""

import pytest

from bench.params import PARTIAL_RESULTS_FILE, RESULTS_FILE, parse_args, results_path, runs


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


def test_a_run_of_every_phase_writes_the_results_file_of_record():
    assert results_path(parse_args([])) == RESULTS_FILE


def test_a_partial_run_writes_beside_it_and_leaves_the_full_runs_file_alone():
    path = results_path(parse_args(["--only", "a,b"]))
    assert path == PARTIAL_RESULTS_FILE and path.parent == RESULTS_FILE.parent and path != RESULTS_FILE


def test_results_names_the_file_whatever_the_phases(tmp_path):
    wanted = tmp_path / "mine.json"
    assert results_path(parse_args(["--results", str(wanted)])) == wanted
    assert results_path(parse_args(["--only", "f", "--results", str(wanted)])) == wanted


def test_help_says_where_the_results_go(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--results PATH" in shown and "bench/results-partial.json with --only" in shown

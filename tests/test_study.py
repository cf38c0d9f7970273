"""fastdense.study and `fastdense study`: each case's qualitative outcome on the embedded data."""

import json
import math
import sys

import numpy as np
import pytest

from fastdense import cli, data, study


@pytest.fixture(scope="module")
def results():
    # The whole study on the embedded data, once: a few seconds.
    return {r.key: r for r in study.run_study(verbose=False)}


def _kinds(findings):
    return {f.kind for f in findings}


def test_every_case_shows_its_expected_outcome(results):
    assert list(results) == ["1", "2", "3", "4a", "4b", "4c", "5a", "5b", "5c"]
    failed = {k: (r.observed, r.loss, sorted(_kinds(r.findings))) for k, r in results.items()
              if not r.passed}
    assert not failed


def test_case1_softmax_regression_learns_from_zeros(results):
    r = results["1"]
    assert r.accuracy >= 0.7  # ~0.8 on full Fashion-MNIST, ~0.92 on MNIST
    assert "symmetric" not in _kinds(r.findings)  # the labels break the symmetry


def test_case2_zero_hidden_layer_is_stuck_dead_and_symmetric(results):
    r = results["2"]
    assert r.accuracy <= 0.2
    assert {"dead", "symmetric"} <= _kinds(r.findings_init)
    assert {"dead", "symmetric"} <= _kinds(r.findings_final)  # and it stays that way


def test_case3_small_uniform_init_learns(results):
    assert results["3"].accuracy >= 0.7
    assert not _kinds(results["3"].findings_init) - {"uniform_softmax"}


def test_case4_regression_depth_and_tiny_init(results):
    a, b, c = results["4a"], results["4b"], results["4c"]
    assert a.loss < 0.01 and a.details["slope"] > 0.9
    # The deeper net's output does not depend on the input: 2y is ~constant, loss ~E[x^2].
    assert b.details["output_std"] < 0.01 and b.loss == pytest.approx(1 / 3, abs=0.05)
    assert {"vanishing_gradients", "vanishing_activations"} <= _kinds(b.findings_init)
    assert not {"vanishing_gradients", "vanishing_activations"} & _kinds(a.findings_init)
    assert b.details["grad_drop_vs_4a"] > 100  # "gradients about 1000x smaller"
    assert c.loss < 0.01 and c.details["slope"] > 0.9
    assert not _kinds(c.findings_init)


def test_case5_scale_of_init(results):
    a, b, c = results["5a"], results["5b"], results["5c"]
    assert {"exploding_activations", "saturated_softmax"} <= _kinds(a.findings_init)
    assert a.details["init_loss"] > 100 and a.details["init_top_prob"] > 0.99
    assert abs(b.loss - math.log(10)) <= 0.01
    assert {"vanishing_activations", "vanishing_gradients"} <= _kinds(b.findings_init)
    assert "uniform_softmax" in _kinds(b.findings_final)
    assert c.accuracy >= 0.8
    assert not _kinds(c.findings_init) - {"uniform_softmax"}


def test_results_are_json_and_the_table_names_every_case(results):
    rs = list(results.values())
    for r in rs:
        json.dumps(r.to_dict(), allow_nan=False)
        assert r.seconds > 0
    text = study.format_table(rs, dataset="embedded")
    md = study.format_table(rs, dataset="embedded", markdown=True)
    for key in results:
        assert f"\n{key} " in text and f"\n| {key} |" in md
    assert "dataset: embedded" in text and "as expected" in md


def test_case_selection():
    assert [c.key for c in study._select("4")] == ["4a", "4b", "4c"]
    assert [c.key for c in study._select(["5c", 1])] == ["1", "5c"]
    with pytest.raises(ValueError, match="unknown study case '6'"):
        study._select("6")


def test_doubled_output_loss_gradient():
    loss = study.DoubledOutputSquaredError()
    y = np.array([[0.1], [-0.4], [0.3]], np.float32)
    t = np.array([[0.5], [0.2], [-1.0]], np.float32)
    value, grad = loss.value_and_grad(y, t)
    assert value == pytest.approx(np.mean((t - 2 * y) ** 2))
    np.testing.assert_allclose(grad, -4 * (t - 2 * y) / 3, rtol=1e-6)


def test_outputs_written_to_the_directory(tmp_path, capsys):
    out = tmp_path / "study"
    study.run_study(cases="2", outdir=str(out), verbose=True)
    printed = capsys.readouterr().out
    assert "case 2 " in printed and "as expected" in printed
    payload = json.loads((out / "results.json").read_text())
    assert payload["dataset"] == "embedded" and payload["cases"][0]["key"] == "2"
    assert {"init", "trained"} == set(payload["reports"]["2"])
    assert "2 " in (out / "table.txt").read_text()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pictures skipped" in printed
        return
    for name in ("curves.png", "hist_2.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_pictures_skipped_with_a_note_without_matplotlib(tmp_path, capsys, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    study.run_study(cases="4a", outdir=str(tmp_path), verbose=True)
    assert "pip install fastdense[plot]" in capsys.readouterr().out
    assert (tmp_path / "table.md").exists() and not list(tmp_path.glob("*.png"))


def test_cli_study_runs_selected_cases(tmp_path, capsys):
    rc = cli.main(["study", "--cases", "4a", "--out", str(tmp_path / "o"), "--seed", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "case 4a" in out and "as expected" in out
    assert (tmp_path / "o" / "table.txt").exists()


def test_cli_study_reports_missing_data_cleanly(tmp_path, capsys, monkeypatch):
    def missing(name, path=None, **kwargs):
        raise data.DataNotFoundError("MNIST not found and not downloaded.")

    monkeypatch.setattr(data, "load_dataset", missing)
    rc = cli.main(["study", "--dataset", "mnist", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "fastdense study: error: MNIST not found" in err
    assert not (tmp_path / "o").exists()


def test_cli_study_rejects_unknown_cases(tmp_path, capsys):
    assert cli.main(["study", "--cases", "9", "--out", str(tmp_path / "o")]) == 2
    assert "unknown study case" in capsys.readouterr().err

"""The classical forecasting baselines (SARIMA, Holt-Winters) reproduce statsmodels called directly."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("statsmodels", reason="statsmodels (rnnkit[data]) runs the classical baselines")
from statsmodels.tsa.holtwinters import ExponentialSmoothing  # noqa: E402
from statsmodels.tsa.statespace.sarimax import SARIMAX  # noqa: E402

from rnnkit.apps.forecast import classical_forecast  # noqa: E402
from rnnkit.cli.main import main  # noqa: E402
from rnnkit.errors import InputError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::Warning")  # statsmodels' convergence chatter on tiny series


def seasonal_series(rows=72, season=12, seed=0):
    """A positive, trending series with a multiplicative season and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    return (100 + 2 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / season)) * np.exp(rng.normal(0, 0.03, rows))


FIT, ENDS = 48, np.arange(47, 69)  # fit on 48 rows; forecast after every window ending at rows 47..68


def test_sarima_reproduces_statsmodels_one_step_and_multi_step():
    y = seasonal_series()
    fitted = SARIMAX(np.log(y[:FIT]), order=(0, 1, 1), seasonal_order=(0, 1, 1, 12)).fit(disp=False)
    # The oracle: statsmodels' own forecast after appending the observed rows up to each origin.
    expected = [np.exp(fitted.append(np.log(y[FIT:e + 1])).forecast(1)[0]) if e >= FIT else
                np.exp(fitted.forecast(1)[0]) for e in ENDS]
    ours = classical_forecast("sarima", y, FIT, ENDS, 1, 12)
    assert ours.shape == (len(ENDS), 1)
    np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-6)
    three = classical_forecast("sarima", y, FIT, ENDS[:4], 3, 12)
    np.testing.assert_allclose(three[0], np.exp(fitted.forecast(3)), rtol=1e-6)
    np.testing.assert_allclose(three[3], np.exp(fitted.append(np.log(y[FIT:ENDS[3] + 1])).forecast(3)), rtol=1e-6)


def test_sarima_without_logs_on_a_series_below_zero():
    y = seasonal_series() - 150  # crosses 0: no logs
    fitted = SARIMAX(y[:FIT], order=(0, 1, 1), seasonal_order=(0, 1, 1, 12)).fit(disp=False)
    ours = classical_forecast("sarima", y, FIT, ENDS[:1], 2, 12)
    np.testing.assert_allclose(ours[0], fitted.forecast(2), rtol=1e-6)


def test_holt_winters_reproduces_statsmodels():
    y = seasonal_series()
    spec = {"trend": "add", "seasonal": "add", "seasonal_periods": 12}
    fit = ExponentialSmoothing(np.log(y[:FIT]), **spec).fit()
    ours = classical_forecast("holt_winters", y, FIT, ENDS, 1, 12)
    np.testing.assert_allclose(ours[0, 0], np.exp(fit.forecast(1)[0]), rtol=1e-6)  # statsmodels' own forecast
    np.testing.assert_allclose(classical_forecast("holt_winters", y, FIT, ENDS[:1], 4, 12)[0],
                               np.exp(fit.forecast(4)), rtol=1e-6)
    # Later origins: statsmodels' model on the longer history, with the parameters fitted on the first 48 rows.
    p = fit.params
    for i in (5, len(ENDS) - 1):
        e = ENDS[i]
        model = ExponentialSmoothing(np.log(y[:e + 1]), **spec, initialization_method="known",
                                     initial_level=p["initial_level"], initial_trend=p["initial_trend"],
                                     initial_seasonal=p["initial_seasons"])
        again = model.fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                          smoothing_seasonal=p["smoothing_seasonal"], optimized=False)
        np.testing.assert_allclose(ours[i, 0], np.exp(again.forecast(1)[0]), rtol=1e-6)


def test_classical_forecasts_beat_the_naive_one_on_a_seasonal_series():
    y = seasonal_series(seed=1)
    naive = np.sqrt(np.mean((y[ENDS] - y[ENDS + 1]) ** 2))
    for kind in ("sarima", "holt_winters"):
        forecast = classical_forecast(kind, y, FIT, ENDS, 1, 12)[:, 0]
        assert np.sqrt(np.mean((forecast - y[ENDS + 1]) ** 2)) < 0.5 * naive


def test_bad_input():
    y = seasonal_series()
    with pytest.raises(InputError, match="positive values"):
        classical_forecast("sarima", y - 150, FIT, ENDS, 1, 12, log=True)
    with pytest.raises(ValueError, match="kind must be one of sarima, holt_winters"):
        classical_forecast("arima", y, FIT, ENDS, 1, 12)


def series_csv(path, rows=96):
    y = seasonal_series(rows)
    lines = ["month,load"] + [f"{2000 + t // 12}-{t % 12 + 1:02d}-01,{v:.4f}" for t, v in enumerate(y)]
    path.write_text("\n".join(lines) + "\n")
    return y


@pytest.mark.slow
def test_cli_evaluate_with_baselines(tmp_path, capsys):
    y = series_csv(tmp_path / "load.csv")
    run = tmp_path / "run"
    assert main(["forecast", "train", "--data", str(tmp_path / "load.csv"), "--out", str(run), "--max-steps", "20",
                 "--hidden-size", "8", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["forecast", "evaluate", "--run", str(run), "--baselines", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # The default split: the test part is the last 20 % (19 rows), the baselines fitted on the 77 rows before it.
    ends = np.arange(96 - 19 - 1, 95)
    for kind in ("sarima", "holt_winters"):
        forecast = classical_forecast(kind, y.round(4), 77, ends, 1, 12)[:, 0]
        assert math.isclose(result[kind]["rmse"], float(np.sqrt(np.mean((forecast - y.round(4)[ends + 1]) ** 2))),
                            rel_tol=1e-6)
    assert main(["forecast", "evaluate", "--run", str(run), "--baselines"]) == 0
    table = capsys.readouterr().out
    assert "SARIMA(0,1,1)(0,1,1)12" in table and "Holt-Winters" in table
    assert main(["forecast", "evaluate", "--run", str(run), "--baselines", "--part", "train"]) == 2
    assert "need at least 3 seasons" in capsys.readouterr().err

"""Real time series for forecasting. Each loader returns a pandas ``DataFrame`` with a ``time`` column
(``datetime64``) first and one column per variable, in time order. All come from packages of the
``data`` extra (``pip install 'rnnkit[data]'``), imported only when a loader runs.

- ``stocks``: daily prices of AAPL, GOOG, IBM, MSFT 2000-2013 (``bokeh_sampledata``; Quandl WIKI, public domain).
- ``weather``: a typical year of hourly weather (``pvlib``'s NREL TMY3 files; US government data, BSD package).
- ``sunspots``, ``co2``: yearly sunspot numbers and weekly Mauna Loa CO2 (``statsmodels``; public domain).
- ``airline``: Box & Jenkins' monthly airline passengers 1949-1960 (``pmdarima``, MIT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnkit.datasets._common import INSTALL_EXTRA, import_module, package_dir, require_file

if TYPE_CHECKING:
    import pandas as pd

STOCK_SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")

#: pvlib's bundled TMY files: site -> (file, reader).
WEATHER_SITES = {
    "greensboro": ("723170TYA.CSV", "read_tmy3"),   # Greensboro NC, TMY3
    "sand_point": ("703165TY.csv", "read_tmy3"),    # Sand Point AK, TMY3
}
TMY_YEAR = 1990  # a typical year has no year of its own; one nominal year keeps time increasing
WEATHER_COLUMNS = ("temp_air", "temp_dew", "relative_humidity", "pressure", "wind_speed",
                   "wind_direction", "ghi", "dni", "dhi")


def _pandas(dataset: str):
    return import_module(dataset, "pandas")


def stocks(symbol: str = "AAPL") -> pd.DataFrame:
    """Daily prices of one stock: columns ``time, open, high, low, close, volume, adj_close``;
    3,270 trading days from 2000-03-01 to 2013-03-01 (GOOG: 2,148 from 2004-08-19).

    Source: ``bokeh_sampledata.stocks`` (PyPI ``bokeh_sampledata``), from Quandl's WIKI prices.
    Licence: public domain (Quandl's publisher notice). Open/high/low/close/volume are unadjusted;
    ``adj_close`` is split- and dividend-adjusted.
    """
    if symbol not in STOCK_SYMBOLS:
        raise ValueError(f"unknown stock {symbol!r}; known: {', '.join(STOCK_SYMBOLS)}")
    pd = _pandas("stocks")
    data = getattr(import_module("stocks", "bokeh_sampledata.stocks"), symbol)
    frame = pd.DataFrame(data)
    frame.insert(0, "time", pd.to_datetime(frame.pop("date")))
    return frame.sort_values("time", ignore_index=True)


def weather(site: str = "greensboro") -> pd.DataFrame:
    """A typical meteorological year of hourly weather: 8,760 rows, columns ``time`` and
    ``temp_air`` (°C), ``temp_dew`` (°C), ``relative_humidity`` (%), ``pressure`` (mbar), ``wind_speed``
    (m/s), ``wind_direction`` (°), ``ghi``, ``dni``, ``dhi`` (irradiance, W/m²).

    Args:
        site: ``'greensboro'`` (Greensboro NC) or ``'sand_point'`` (Sand Point AK).

    Source: the NREL TMY3 files bundled in PyPI ``pvlib`` (``pvlib/data``), read with
    ``pvlib.iotools.read_tmy3``. Licence: NREL data (US government); pvlib is BSD-3. A typical year joins
    months from different years, so values jump slightly at month boundaries; ``time`` is hourly in local
    standard time from 1990-01-01 01:00 to 1991-01-01 00:00, the year set to 1990 for every month.
    """
    if site not in WEATHER_SITES:
        raise ValueError(f"unknown weather site {site!r}; known: {', '.join(WEATHER_SITES)}")
    file, reader = WEATHER_SITES[site]
    path = require_file("weather", package_dir("weather", "pvlib") / "data" / file, INSTALL_EXTRA)
    iotools = import_module("weather", "pvlib.iotools")
    frame, _ = getattr(iotools, reader)(path, map_variables=True, coerce_year=TMY_YEAR)
    frame = frame.loc[:, list(WEATHER_COLUMNS)].reset_index(names="time")
    frame["time"] = frame["time"].dt.tz_localize(None)
    return frame


def sunspots() -> pd.DataFrame:
    """Yearly mean sunspot numbers 1700-2008: 309 rows, columns ``time, sunspots``.

    Source: ``statsmodels.datasets.sunspots`` (PyPI ``statsmodels``), from NOAA's National Geophysical
    Data Center. Licence: public domain.
    """
    pd = _pandas("sunspots")
    data = import_module("sunspots", "statsmodels.datasets.sunspots").load_pandas().data
    years = data["YEAR"].astype(int).astype(str)
    return pd.DataFrame({"time": pd.to_datetime(years, format="%Y"), "sunspots": data["SUNACTIVITY"]})


def co2(*, interpolate: bool = False) -> pd.DataFrame:
    """Weekly atmospheric CO2 at Mauna Loa, March 1958 to December 2001: 2,284 rows, columns
    ``time, co2`` (ppm). 59 weeks are missing (NaN) unless ``interpolate`` fills them linearly.

    Source: ``statsmodels.datasets.co2`` (PyPI ``statsmodels``), Keeling & Whorf's flask samples (CDIAC).
    Licence: public domain.
    """
    data = import_module("co2", "statsmodels.datasets.co2").load_pandas().data
    frame = data.rename_axis("time").reset_index()
    if interpolate:
        frame["co2"] = frame["co2"].interpolate()
    return frame


def airline() -> pd.DataFrame:
    """Box & Jenkins' monthly totals of international airline passengers (thousands), January 1949 to
    December 1960: 144 rows, columns ``time, passengers`` (the classic ``AirPassengers`` series).

    Source: ``pmdarima.datasets.load_airpassengers`` (PyPI ``pmdarima``). The series is from Box, Jenkins
    & Reinsel, *Time Series Analysis* (1976), series G, as in R's ``datasets``. Licence: pmdarima is MIT;
    the figures are historical statistics that no separate licence covers, redistributed freely for decades.
    """
    pd = _pandas("airline")
    values = import_module("airline", "pmdarima.datasets").load_airpassengers()
    return pd.DataFrame({"time": pd.date_range("1949-01-01", periods=len(values), freq="MS"),
                         "passengers": values})

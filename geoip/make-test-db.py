#!/usr/bin/env python3
"""Regenerate geoip/edge-test.mmdb, the tiny GeoIP test database of `edge`.

It maps only documentation / test address ranges (RFC 5737, RFC 3849) to
countries, with the record layout of MaxMind's GeoLite2-Country database, so the
proxy's geo code and tests run without a real (licensed) database.

Needs the PyPI packages `mmdb-writer` and `netaddr` (pinned below). Run from any
directory:

    python3 -m venv /tmp/mmdb-venv
    /tmp/mmdb-venv/bin/pip install mmdb-writer==0.2.7 netaddr==1.3.0
    /tmp/mmdb-venv/bin/python geoip/make-test-db.py          # writes geoip/edge-test.mmdb
    /tmp/mmdb-venv/bin/python geoip/make-test-db.py OUT.mmdb # or another path

The output is byte-for-byte reproducible (fixed build_epoch, fixed insertion order).
"""

import os
import sys

try:
    from mmdb_writer import MMDBWriter, MmdbU32
    from netaddr import IPSet
except ImportError:  # pragma: no cover - guidance only
    sys.exit(
        "make-test-db.py needs the PyPI packages mmdb-writer and netaddr:\n"
        "  python3 -m venv /tmp/mmdb-venv && "
        "/tmp/mmdb-venv/bin/pip install mmdb-writer==0.2.7 netaddr==1.3.0\n"
        "  /tmp/mmdb-venv/bin/python " + sys.argv[0]
    )

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "edge-test.mmdb")

# 2024-01-01T00:00:00Z: fixed so that regenerating gives an identical file.
BUILD_EPOCH = 1704067200

CONTINENTS = {
    "EU": {"code": "EU", "geoname_id": MmdbU32(6255148), "names": {"en": "Europe"}},
    "NA": {"code": "NA", "geoname_id": MmdbU32(6255149), "names": {"en": "North America"}},
}

# iso_code -> (geoname_id, English name, continent, in the EU)
COUNTRIES = {
    "GB": (2635167, "United Kingdom", "EU", False),
    "US": (6252001, "United States", "NA", False),
    "DE": (2921044, "Germany", "EU", True),
    "NL": (2750405, "Netherlands", "EU", True),
}


def country(iso):
    geoname_id, name, _continent, in_eu = COUNTRIES[iso]
    rec = {"geoname_id": MmdbU32(geoname_id), "iso_code": iso, "names": {"en": name}}
    if in_eu:
        rec["is_in_european_union"] = True
    return rec


def record(iso):
    """A GeoLite2-Country record: continent, country and registered_country."""
    return {
        "continent": CONTINENTS[COUNTRIES[iso][2]],
        "country": country(iso),
        "registered_country": country(iso),
    }


# (network, record). IPv4 networks are stored in the IPv4-compatible subtree
# ::/96 (as MaxMind does) and, like MaxMind's databases, also under the
# IPv4-mapped alias ::ffff:0:0/96 so readers that do not canonicalise
# ::ffff:a.b.c.d still find them. Loopback, 10/8, 8.8.8.8 etc. stay UNKNOWN.
RANGES = [
    ("192.0.2.0/24", record("GB")),     # TEST-NET-1
    ("198.51.100.0/24", record("US")),  # TEST-NET-2
    ("203.0.113.0/24", record("DE")),   # TEST-NET-3
    ("2001:db8:1::/48", record("GB")),  # RFC 3849 documentation prefix
    ("2001:db8:2::/48", record("US")),
    # Only registered_country (as GeoLite2 has for some anycast/satellite
    # networks): readers fall back to registered_country.iso_code -> NL.
    ("2001:db8:3::/48", {
        "continent": CONTINENTS["EU"],
        "registered_country": country("NL"),
    }),
    # A record without any country: the lookup must say "unknown".
    ("2001:db8:4::/48", {"continent": CONTINENTS["EU"]}),
]


def v4_mapped_alias(cidr):
    net, plen = cidr.split("/")
    return "::ffff:%s/%d" % (net, 96 + int(plen))


class FixedEpochWriter(MMDBWriter):
    def _build_meta(self):
        meta = super()._build_meta()
        meta["build_epoch"] = BUILD_EPOCH
        return meta


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    writer = FixedEpochWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-Country",
        languages=["en"],
        description={"en": "edge test database: documentation ranges only (not real data)"},
        int_type="u32",
    )
    for cidr, rec in RANGES:
        writer.insert_network(IPSet([cidr]), rec)
        if ":" not in cidr:
            writer.insert_network(IPSet([v4_mapped_alias(cidr)]), rec)
    writer.to_db_file(out)
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))


if __name__ == "__main__":
    main()

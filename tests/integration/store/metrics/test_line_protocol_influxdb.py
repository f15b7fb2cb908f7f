"""The line-protocol parser against the real thing: each line goes to InfluxDB 1.6 and through
``parse``; both must accept the same lines, read back the same values, and reject the same lines
for the same reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vigil.ingest.line_protocol import parse
from vigil.store.metrics.influx import quote_identifier

ACCEPTED = [
    (
        "disk\\ io,host=web\\,1,mount\\ point=/var\\ data,opt\\=x=on "
        'free=12.5,label="a \\"quoted\\" \\\\ value",ok=true,n=3i 1700000000000000000'
    ),
    "cpu,host=a,region=eu usage_idle=98.2,usage_user=1.05,procs=12i 1700000000000000000",
    "m\\,x\\ y=z v=1 1",
    "m,k\\ 1=v\\,\\=\\ 2 v=1 1",
    "m f\\,\\=\\ k=1 1",
    "m\\x,t=a\\b f\\q=1 1",
    'm,t="a" v=1 1',
    "m,t==x v=1 1",
    "m,t=a\\\\,u v=1 1",
    "m,t=a\\ b v=1 1",
    'm f"k=1 1',
    "m v=.5,w=5.,x=01,y=-0,z=1e5,q=1E+2,r=-1.2e-3 1",
    "m v=9223372036854775807i,w=-9223372036854775808i,z=0i 1",
    "m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE 1",
    'm s="a b, c=d",e="",q="\\"x\\" \\\\",u="ü 日本 📈" 1',
    'm s="multi\nline\n" 1',
    "m v=1,v=2 1",
    "m   v=1   1   ",
    "  \tm v=1 1",
    "m v=1 -1700000000000000000",
    "m,a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8 v=1 1",
    "ünï\\ cødé,κ=λ π=3.14 1",
]

REJECTED = [
    "cpu",
    "cpu,host=a",
    ",host=a v=1",
    "cpu,=a v=1",
    "cpu,host v=1",
    "cpu,host= v=1",
    "cpu,host=a,host=b v=1",
    "cpu,host=a=b v=1",
    "cpu v=",
    "cpu v=,w=1",
    "cpu =1",
    "cpu v=1,=2",
    "cpu v=1,w",
    "cpu v",
    "cpu v=1x",
    "cpu v=1.2.3",
    "cpu v=--1",
    "cpu v=1_000",
    "cpu v=NaN",
    "cpu v=-inf",
    "cpu v=inf",
    "cpu v=+1",
    "cpu v=1e",
    "cpu v=1e999",
    "cpu v=1.5i",
    "cpu v=1e5i",
    "cpu v=9i10",
    "cpu v=yes",
    "cpu v=truei",
    "cpu v=9223372036854775808i",
    'cpu v="unterminated',
    'cpu v="a" 1 2',
    "cpu v=1 12x",
    "cpu v=1 1.5",
    "cpu v=1 -",
    "cpu v=1 99999999999999999999",
    "cpu v=1 9223372036854775807",
]


@pytest.fixture
def influx(influx_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=influx_url, timeout=10) as client:
        yield client


def fresh_database(client: httpx.Client) -> str:
    name = f"vigil_lp_{uuid.uuid4().hex[:10]}"
    client.post("/query", data={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()
    return name


def read_back(client: httpx.Client, database: str, measurement: str) -> tuple[list[Any], dict[str, str]]:
    """The stored row (time first, then tag and field columns by name) and the field types."""
    params = {"db": database, "epoch": "ns", "q": f"SELECT * FROM {quote_identifier(measurement)}"}
    series = client.get("/query", params=params).json()["results"][0]["series"]
    assert len(series) == 1 and len(series[0]["values"]) == 1
    row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    params["q"] = f"SHOW FIELD KEYS FROM {quote_identifier(measurement)}"
    types = dict(client.get("/query", params=params).json()["results"][0]["series"][0]["values"])
    return [row], types


PY_TYPE = {"float": float, "integer": int, "boolean": bool, "string": str}


@pytest.mark.parametrize("line", ACCEPTED)
def test_lines_influxdb_accepts_parse_to_what_it_stores(influx: httpx.Client, line: str) -> None:
    database = fresh_database(influx)
    try:
        response = influx.post("/write", params={"db": database}, content=line.encode())
        assert response.status_code == 204, response.text
        result = parse(line)
        assert result.errors == []
        assert len(result.points) == 1
        point = result.points[0]
        (row,), types = read_back(influx, database, point.measurement)
        if point.time_ns is not None:
            assert row.pop("time") == point.time_ns
        else:
            row.pop("time")
        assert {k: row[k] for k in point.tags} == point.tags
        assert set(row) == set(point.tags) | set(point.fields)
        for name, value in point.fields.items():
            assert PY_TYPE[types[name]] is type(value), name
            assert row[name] == value, name
    finally:
        influx.post("/query", data={"q": f'DROP DATABASE "{database}"'})


@pytest.mark.parametrize("line", REJECTED)
def test_lines_influxdb_rejects_are_rejected_for_the_same_reason(influx: httpx.Client, line: str) -> None:
    database = fresh_database(influx)
    try:
        response = influx.post("/write", params={"db": database}, content=line.encode())
        assert response.status_code == 400
        result = parse(line)
        assert result.points == []
        assert result.influx_error() == response.json()["error"]
    finally:
        influx.post("/query", data={"q": f'DROP DATABASE "{database}"'})


def test_unsigned_integers_are_accepted_here_but_not_by_influxdb_1x(influx: httpx.Client) -> None:
    # A documented difference: 2.x/3.x take 42u, stock 1.x does not.
    database = fresh_database(influx)
    try:
        response = influx.post("/write", params={"db": database}, content=b"m v=42u 1")
        assert response.status_code == 400 and response.json()["error"].endswith("invalid number")
        assert parse("m v=42u 1").points[0].fields == {"v": 42}
    finally:
        influx.post("/query", data={"q": f'DROP DATABASE "{database}"'})


def test_a_body_splits_and_keeps_good_lines_as_influxdb_does(influx: httpx.Client) -> None:
    body = 'a s="x\ny, z=1\n" 1\nbad\nc,t=q v=1 2\n# comment "\n\nd v=x 3\ne\\\nf v=2 4\n  g v=3 5'
    database = fresh_database(influx)
    try:
        response = influx.post("/write", params={"db": database}, content=body.encode())
        assert response.status_code == 400
        result = parse(body)
        assert result.influx_error() == response.json()["error"]
        params = {"db": database, "q": "SHOW MEASUREMENTS"}
        stored = [
            v[0] for v in influx.get("/query", params=params).json()["results"][0]["series"][0]["values"]
        ]
        assert sorted(p.measurement for p in result.points) == stored
    finally:
        influx.post("/query", data={"q": f'DROP DATABASE "{database}"'})

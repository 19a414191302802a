"""Suite files: bundled ones load, user mistakes get a clear message before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protolab.bench.suite import BUNDLED, expand, load_suite, parse_suite
from protolab.errors import ConfigError
from protolab.netem.config import Direction

MINIMAL = {"variant": [{"protocol": "h2"}]}


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_suites_load_and_say_what_to_expect(name: str) -> None:
    suite = load_suite(name)
    assert suite.description
    assert suite.expected
    assert expand(suite)


def test_sweeps_expand_to_one_cell_per_variant_and_point() -> None:
    suite = parse_suite({
        "variant": [{"protocol": "h2"}, {"protocol": "h3", "label": "quic"}],
        "link": {"overrides": {"rate": "10mbit"}, "sweep": {"loss": ["0%", "1%"],
                                                              "delay": ["5ms", "25ms"]},
                 "points": [{"drop": "down:40"}]},
    })
    cells = expand(suite)
    assert len(cells) == 2 * (2 * 2 + 1)
    assert cells[0].link_point == {"rate": "10mbit", "delay": "5ms", "loss": "0%"}
    assert cells[-1].link_point == {"rate": "10mbit", "drop": "down:40"}
    assert [c.variant.label for c in cells[:2]] == ["h2", "quic"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"variant": [{"protocol": "h9"}]}, "unknown protocol 'h9'"),
        ({}, "at least one [[variant]]"),
        ({**MINIMAL, "repetitons": 3}, "unknown key(s) ['repetitons']"),
        ({**MINIMAL, "repetitions": 0}, "below the minimum"),
        ({**MINIMAL, "repetitions": "five"}, "wrong type"),
        ({**MINIMAL, "link": {"profile": "moon"}}, "unknown profile 'moon'"),
        ({**MINIMAL, "link": {"overrides": {"loss": "150%"}}}, "loss"),
        ({**MINIMAL, "link": {"overrides": {"delay": "-5ms"}}}, "must not be negative"),
        ({**MINIMAL, "link": {"sweep": {"loss": []}}}, "non-empty list"),
        ({**MINIMAL, "link": {"overrides": {"latency": "5ms"}}}, "unknown key(s) ['latency']"),
        ({**MINIMAL, "workload": {"paths": ["bytes/1"]}}, "starting with /"),
        ({**MINIMAL, "workload": {"count": -1}}, "below the minimum"),
        ({"variant": [{"protocol": "h2", "zero_rtt": True}]}, "needs a protocol with early data"),
        ({"variant": [{"protocol": "h3", "cc": "bbr"}]}, "h3: cc must be one of cubic, reno"),
        ({"variant": [{"protocol": "h3", "tls": False}]}, "h3 needs tls = true"),
        ({"variant": [{"protocol": "grpc", "cc": "reno"}]}, "cannot set this client's congestion"),
        ({"variant": [{"protocol": "h3", "resume": True}]}, "resume is for TCP+TLS"),
        ({"variant": [{"protocol": "h2"}, {"protocol": "h2"}]}, "unique"),
        ({**MINIMAL, "timeout_s": float("nan")}, "finite number"),
        ({**MINIMAL, "timeout_s": float("inf")}, "finite number"),
        ({**MINIMAL, "seed": 2**64}, "above the maximum"),
        ({**MINIMAL, "link": {"sweep": {"seed": ["x"]}}}, "link seed must be an integer"),
        ({**MINIMAL, "workload": {"load": "open", "rate": float("nan")}}, "finite number"),
        ({"variant": [{"protocol": "h2", "tls_version": "1.1"}]}, "tls_version"),
    ],
)
def test_mistakes_are_named(data: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(data, "my.toml")
    assert words in str(info.value)


def test_files_by_path_and_broken_toml(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\n[[variant]]\nprotocol = "h1"\n')
    assert load_suite(str(good)).name == "mine"
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(str(bad))
    with pytest.raises(ConfigError, match="no suite"):
        load_suite(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize("name", BUNDLED)
def test_cells_and_client_jobs_cross_a_process_boundary_unchanged(name: str) -> None:
    # A cell carries its built link; through JSON (another process, another machine) it
    # comes back equal, and so does the client side of one of its repetitions.
    import json

    from protolab.bench.runner import ClientJob
    from protolab.bench.suite import Cell

    suite = load_suite(name)
    for cell in expand(suite):
        assert Cell.from_json(json.loads(json.dumps(cell.to_json()))) == cell
        job = ClientJob(cell.variant, suite.workload, suite.timeout_s)
        assert ClientJob.from_json(json.loads(json.dumps(job.to_json()))) == job


def test_a_damaged_cell_document_is_a_config_error() -> None:
    from protolab.bench.suite import Cell

    cell = expand(load_suite("demo"))[0].to_json()
    for broken in ({**cell, "index": -1}, {**cell, "variant": {"protocol": "h9"}},
                   {**cell, "extra": 1}, {**cell, "link_point": {"delay": 5}}):
        with pytest.raises(ConfigError):
            Cell.from_json(broken)


def _suite_documents() -> st.SearchStrategy[dict[str, object]]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                        st.sampled_from(["5ms", "1%", "10mbit", "h2", "h3", "open", "1.2"]))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=6)
    variant_keys = st.sampled_from(["protocol", "label", "tls", "cc", "window", "zero_rtt",
                                    "resume", "connections", "pipeline", "data_frame"])
    variant = st.dictionaries(variant_keys, st.one_of(values, st.sampled_from(
        ["h1", "h2", "h3", "ws", "grpc"])), max_size=4)
    return st.fixed_dictionaries({
        "variant": st.one_of(values, st.lists(variant, min_size=1, max_size=3)),
    }, optional={
        "repetitions": values, "warmup": values, "timeout_s": values, "seed": values,
        "link": st.one_of(values, st.fixed_dictionaries({}, optional={
            "profile": st.sampled_from(["loopback", "lan", "moon"]),
            "overrides": st.dictionaries(st.sampled_from(["delay", "loss", "rate", "seed",
                                                          "burst", "queue"]), values),
            "sweep": st.dictionaries(st.sampled_from(["delay", "loss"]), values)})),
        "workload": st.one_of(values, st.dictionaries(st.sampled_from(
            ["paths", "count", "concurrency", "load", "rate", "body_bytes"]), values)),
    })


@settings(max_examples=300, deadline=None)
@given(_suite_documents())
def test_fuzz_any_suite_document_parses_or_is_a_config_error(data: dict[str, object]) -> None:
    try:
        suite = parse_suite(data, "fuzz.toml")
    except ConfigError:
        return
    assert expand(suite)  # what parses, expands into runnable cells


def test_a_short_table_overrides_what_protolab_claims_runs() -> None:
    full, short = load_suite("handshake"), load_suite("handshake", short=True)
    assert short.repetitions < full.repetitions
    assert len(short.link.points()) < len(full.link.points())
    assert short.claims == full.claims  # the same claims, judged on less data
    with pytest.raises(ConfigError, match=r"\[short\]: unknown key"):
        parse_suite({**MINIMAL, "short": {"variant": []}})
    with pytest.raises(ConfigError, match="short.link must be a table"):
        parse_suite({**MINIMAL, "short": {"link": 3}}, short=True)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_claim_of_a_bundled_suite_can_be_judged_on_its_short_run(name: str) -> None:
    # Each claim's sides must name cells the short run has: else its verdict would only
    # ever be "no cell matches".
    from protolab.bench.claims import _matches

    suite = load_suite(name, short=True)
    cells = expand(suite)
    for claim in suite.claims:
        where = {**claim.where, **claim.a.where}
        assert any(c.variant.label == claim.a.variant and _matches(c.link_point, where)
                   for c in cells), f"{name}: claim {claim.id} matches no cell"


def test_a_suite_files_relative_trace_names_the_file_beside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "mine.down").write_text("".join(f"{ms}\n" for ms in range(1, 101)))
    (folder / "s.toml").write_text(
        'name = "t"\n[[variant]]\nprotocol = "h2"\n'
        '[link]\noverrides = { delay = "5ms", trace_down = "mine.down", '
        'trace_up = "cellular.up" }\n'
        '[workload]\npaths = ["/bytes/100"]\n')
    monkeypatch.chdir(tmp_path)  # not the suite's folder
    suite = load_suite(str(folder / "s.toml"))
    cell = expand(suite)[0]
    down = cell.link.direction(Direction.DOWN).trace
    up = cell.link.direction(Direction.UP).trace
    assert down is not None
    assert len(down.ms) == 100
    assert up is not None  # a bundled trace's name stays a name


def test_every_bundled_suite_file_is_named_once_and_bench_help_lists_it() -> None:
    from typer.testing import CliRunner

    from protolab import cli
    from protolab.bench import suite as suite_module

    folder = Path(suite_module.__file__).parent / "suites"
    files = sorted(p.stem for p in folder.glob("*.toml"))
    assert sorted(suite_module.BUNDLED) == files
    assert len(set(suite_module.BUNDLED)) == len(suite_module.BUNDLED)
    shown = CliRunner().invoke(cli.app, ["bench", "--help"], env={"COLUMNS": "400"}).output
    assert all(name in shown for name in files), shown

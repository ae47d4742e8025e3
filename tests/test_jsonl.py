from __future__ import annotations

import json

import pytest

from fedenv.data import Dialogue, Message, generate_org_dialogues, load_jsonl, save_jsonl
from fedenv.errors import DataFormatError

GOOD = {
    "messages": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}]
}


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_keeps_messages_and_domain(tmp_path):
    dialogues = generate_org_dialogues("clinic", 5, seed=0)
    path = tmp_path / "org.jsonl"
    save_jsonl(dialogues, path)
    loaded = load_jsonl(path)
    assert [d.messages for d in loaded] == [d.messages for d in dialogues]
    assert {d.domain for d in loaded} == {"clinic"}
    assert [p.name for p in tmp_path.iterdir()] == ["org.jsonl"]  # no temp file left behind


def test_system_messages_unicode_metadata_and_blank_lines(tmp_path):
    record = {
        "id": 17,
        "messages": [
            {"role": "system", "content": "Réponds brièvement 🙂"},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "D'accord."},
        ],
    }
    path = write_lines(tmp_path / "a.jsonl", [json.dumps(record), "", "   ", json.dumps(GOOD)])
    first, second = load_jsonl(path)
    assert first == Dialogue(
        (
            Message("system", "Réponds brièvement 🙂"),
            Message("user", ""),
            Message("assistant", "D'accord."),
        )
    )
    assert second.domain == ""


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert len(load_jsonl(path)) == 1


def msgs(*pairs):
    return {"messages": [{"role": r, "content": c} for r, c in pairs]}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"messages": [', "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"dialogue": []}', 'missing key "messages"'),
        ('{"messages": []}', "non-empty list"),
        ('{"messages": "hi"}', "non-empty list"),
        ('{"messages": ["hi"]}', "messages[0] must be an object"),
        ('{"messages": [{"role": "user"}]}', "messages[0] is missing content"),
        (json.dumps(msgs(("user", "a"), ("bot", "b"))), "messages[1].role must be one of"),
        (
            '{"messages": [{"role": "assistant", "content": 5}]}',
            "messages[0].content must be a string",
        ),
        (
            '{"messages": [{"role": "assistant", "content": "x", "tool_calls": []}]}',
            "unsupported keys: tool_calls",
        ),
        (json.dumps(msgs(("user", "a"), ("system", "b"), ("assistant", "c"))), "only the first"),
        (json.dumps(msgs(("system", "a"), ("user", "b"))), "no assistant turn"),
        (json.dumps({**GOOD, "domain": 3}), '"domain" must be a string'),
    ],
)
def test_malformed_lines_name_file_line_and_problem(tmp_path, line, problem):
    path = write_lines(tmp_path / "org-b.jsonl", [json.dumps(GOOD), "", line, json.dumps(GOOD)])
    with pytest.raises(DataFormatError) as info:
        load_jsonl(path)
    err = info.value
    assert (err.file, err.line) == (str(path), 3)
    assert problem in err.problem
    assert str(err).startswith(f"{path}:3: ")


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"messages": "\xff"}\n')
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:2: not valid UTF-8"):
        load_jsonl(path)


def test_a_file_without_dialogues_is_an_error(tmp_path):
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(DataFormatError, match="no dialogues") as info:
        load_jsonl(path)
    assert info.value.line is None


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "nope.jsonl")


def test_a_50_mb_line_is_refused_at_once_without_reading_it(tmp_path):
    """A valid JSONL line of 50 MB: refused in well under 5 s, reading at most the limit."""
    import time
    import tracemalloc

    from fedenv.data.jsonl import MAX_LINE_BYTES

    record = {"messages": [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "x" * (50 << 20)}]}
    path = tmp_path / "huge.jsonl"
    ok = json.dumps({"messages": record["messages"][:1] + [{"role": "assistant", "content": "y"}]})
    path.write_text(ok + "\n" + json.dumps(record) + "\n")
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"huge.jsonl:2: the line is longer than 1048576"):
        load_jsonl(path)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 5 and peak < 4 * MAX_LINE_BYTES


def test_line_limit_and_first_dialogues_only(tmp_path):
    line = json.dumps({"messages": [{"role": "assistant", "content": "z" * 990}]})
    path = tmp_path / "d.jsonl"
    path.write_text((line + "\r\n") * 3 + "not json\n")
    assert len(load_jsonl(path, max_line_bytes=len(line), max_dialogues=3)) == 3
    with pytest.raises(DataFormatError, match="d.jsonl:1: the line is longer than 1000 bytes"):
        load_jsonl(path, max_line_bytes=1000)
    with pytest.raises(DataFormatError, match="d.jsonl:4: invalid JSON"):
        load_jsonl(path)


def _scenario_training_on(tmp_path, lines: list[str]):
    """The tiny scenario, its first organization training on a JSONL file of ``lines``."""
    from pathlib import Path

    data = write_lines(tmp_path / "bank.jsonl", lines)
    tiny = (Path(__file__).resolve().parent.parent / "scenarios" / "tiny.toml").read_text()
    assert tiny.count('domain = "bank"') == 1
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(tiny.replace('domain = "bank"', 'domain = "bank"\ndata_path = "bank.jsonl"'))
    return scenario, data


def _play_one_round(scenario) -> str:
    """A fresh interpreter that imports fedenv's modules (torch and transformers: seconds) and
    loads ``scenario``, untimed; then builds its env and plays one round, timed (see
    support_measure)."""
    return (f"import fedenv, fedenv.round, fedenv.scenario.engine\n"
            f"from fedenv.scenario import load_scenario\n"
            f"scenario = load_scenario({str(scenario)!r})"), """
        env = fedenv.parallel_env(scenario)
        env.reset(seed=0)
        env.step({agent: 1 for agent in env.agents})
        env.close()
    """


def test_a_50_mb_line_in_a_scenarios_data_is_refused_in_5_s_and_1_gb(tmp_path):
    """As a user meets it: an organization's JSONL file holds one valid 50 MB dialogue (before,
    135 s and 14.4 GB).  The env refuses it, naming file and line, in a process whose peak
    memory, torch and the model included, stays under 1 GB."""
    from support_measure import measured

    record = {"messages": [{"role": "user", "content": "Tell me all."},
                           {"role": "assistant", "content": "fee " * (50 << 18)}]}
    scenario, data = _scenario_training_on(tmp_path, [json.dumps(record)])
    assert data.stat().st_size > 50 << 20
    result = measured(*_play_one_round(scenario))
    assert result.error == (f"DataFormatError: {data}:1: the line is longer than 1048576 bytes, "
                            f"the limit of one dialogue (fedenv.data.jsonl.MAX_LINE_BYTES); "
                            f"split or shorten it")
    assert result.seconds < 5 and result.peak_bytes < 1 << 30, result


def test_dialogues_up_to_the_line_limit_train_in_bounded_time_and_memory(tmp_path):
    """Every dialogue of the file just under the 1 MiB line limit: cut before tokenization to
    what reaches max_len tokens, so a round costs what short dialogues cost (tokenized whole,
    24 such dialogues took minutes and gigabytes)."""
    from support_measure import measured

    record = {"messages": [{"role": "user", "content": "Tell me all."},
                           {"role": "assistant", "content": "fee " * 262_110}]}
    line = json.dumps(record)
    assert (1 << 20) - 100 < len(line) <= 1 << 20
    scenario, _ = _scenario_training_on(tmp_path, [line] * 24)
    result = measured(*_play_one_round(scenario))
    assert result.error is None
    assert result.seconds < 60 and result.peak_bytes < 1 << 30, result

"""Each Lua script's KEYS and ARGV are named once: the dataclass fields in scripts.py, in slot
order, and the same names in the .lua file's header."""

import re
from dataclasses import fields
from importlib import resources

import pytest

from resilience.storage.redis import scripts

SCRIPTS = [
    ("breaker_common.lua", scripts.BreakerKeys, scripts.BreakerArgs),
    ("names_add.lua", scripts.NamesAddKeys, scripts.NamesAddArgs),
    ("retry_budget.lua", scripts.RetryBudgetKeys, scripts.RetryBudgetArgs),
    ("stale_set.lua", scripts.StaleSetKeys, scripts.StaleSetArgs),
    ("lock_release.lua", scripts.LockReleaseKeys, scripts.LockReleaseArgs),
    ("login_failure.lua", scripts.LoginFailureKeys, scripts.LoginFailureArgs),
]


def header_slots(source: str) -> dict[str, list[str]]:
    """``{"KEYS": [...], "ARGV": [...]}`` from a header's ``-- KEYS: 1 a, 2 b`` lines (and their
    indented continuations)."""
    found: dict[str, list[str]] = {}
    section = None
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        start = re.match(r"-- (KEYS|ARGV): (.*)", line)
        if start:
            section, text = start.group(1), start.group(2)
        elif section and line.startswith("--   "):
            text = line
        else:
            section = None
            continue
        found.setdefault(section, []).extend(f"{n} {name}" for n, name in re.findall(r"\b(\d+) ([a-z_]+)\b", text))
    return found


@pytest.mark.parametrize(("file", "keys", "args"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_the_lua_header_names_every_slot_as_the_dataclass_does_in_the_same_order(file, keys, args):
    source = (resources.files(scripts.__package__) / "lua" / file).read_text()
    numbered = {kind: [f"{i} {f.name}" for i, f in enumerate(fields(cls), 1)] for kind, cls in (("KEYS", keys), ("ARGV", args))}
    assert header_slots(source) == numbered


def test_slots_are_the_fields_values_in_order():
    args = scripts.RetryBudgetArgs(pending_calls=3, want_retry=1, ratio=0.5, floor=2.0, window=10)
    assert args.slots() == [3, 1, 0.5, 2.0, 10]
    assert scripts.StaleSetKeys(value="v", index="i").slots() == ["v", "i"]


def test_the_breaker_scripts_use_no_argument_by_position_outside_the_prelude():
    folder = resources.files(scripts.__package__) / "lua"
    for op in scripts.BREAKER_OPS:
        assert "ARGV[" not in (folder / f"breaker_{op}.lua").read_text(), op

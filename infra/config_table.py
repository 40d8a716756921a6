"""infra/README.md's configuration table, generated from infra/config.py's KEYS, never typed.

    python -m infra.config_table          rewrite the table in infra/README.md

tests/docs/test_deploy_docs.py fails until the table is rewritten after a row of KEYS changes.
"""

from __future__ import annotations

import re
from pathlib import Path

from infra.config import KEYS, LOCATION, TIERS, Key

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"
_BLOCK = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)


def default_cell(key: Key) -> str:
    """`v`; `a` (basic), `b`; or `a` / `b` / `c` by tier: over the tiers the key applies to."""
    if key.required:
        return "— (required)"
    if key.computed:
        return key.computed
    if key.default is None:
        return "unset"
    values = {tier: key.default_in(tier) for tier in key.tiers}
    if len(set(values.values())) == 1:
        return f"`{values[key.tiers[0]]}`"
    production = {value for tier, value in values.items() if tier != "basic"}
    if "basic" in values and len(production) == 1:
        return f"`{values['basic']}` (basic), `{production.pop()}`"
    return " / ".join(f"`{value}`" for value in values.values()) + " by tier"


def where_cell(key: Key) -> str:
    tiers = "all" if key.tiers == TIERS else ", ".join(key.tiers)
    return f"{tiers}; with {key.requires.describe()}" if key.requires else tiers


def table() -> str:
    lines = ["| key | default | tiers | allowed values |", "|---|---|---|---|"]
    lines += [f"| `{key.name}` | {default_cell(key)} | {where_cell(key)} | {key.allowed} |"
              for key in (LOCATION, *KEYS)]
    return "\n".join(lines) + "\n"


def block() -> str:
    return f"{BEGIN}\n{table()}{END}"


def current_block(path: Path = README) -> str:
    found = _BLOCK.search(path.read_text(encoding="utf-8"))
    return found.group(0) if found else ""


def write(path: Path = README) -> None:
    text = path.read_text(encoding="utf-8")
    if not _BLOCK.search(text):
        raise SystemExit(f"{path}: no {BEGIN} ... {END} block to fill")
    path.write_text(_BLOCK.sub(lambda _: block(), text), encoding="utf-8")


if __name__ == "__main__":
    write()

#!/usr/bin/env python3
"""Fails when a module includes a module above it, or a third-party header
outside the one module allowed to include it (docs/architecture.md)."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# module -> modules it may include (besides itself)
ALLOWED = {
    "core": set(),
    "crypto": {"core"},
    "wire": {"core", "crypto"},
    "dht": {"core", "crypto", "wire"},
    "transfer": {"core", "crypto", "wire"},
    "sim": {"core"},
    "node": {"core", "crypto", "wire", "dht", "transfer", "sim"},
}
# third-party header prefix -> the only module that may include it
THIRD_PARTY = {
    "sodium": "crypto",
    "msgpack": "wire",
    "opendht": "dht",
    "uv.h": "transfer",
    "CLI/": "node",
    "nlohmann/": "node",
    "toml++/": "node",
    "spdlog/": "node",
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

errors = []
for module, allowed in ALLOWED.items():
    for path in sorted((ROOT / module).glob("*.[ch]pp")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            header = m.group(2)
            where = f"{path.relative_to(ROOT)}:{lineno}"
            top = header.split("/", 1)[0]
            if m.group(1) == '"' and top in ALLOWED and top != module and top not in allowed:
                errors.append(f"{where}: {module}/ must not include {header} (a higher or sibling module)")
            for prefix, owner in THIRD_PARTY.items():
                if header.startswith(prefix) and module != owner:
                    errors.append(f"{where}: <{header}> belongs to {owner}/ only")

for e in errors:
    print(e)
print(f"layering: {len(errors)} violations")
sys.exit(1 if errors else 0)

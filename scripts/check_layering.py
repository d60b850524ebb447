#!/usr/bin/env python3
"""Fails when a module includes a module above it, or a third-party header
outside the one module allowed to include it (docs/architecture.md), and when a
source file or a function outgrows its size budget (MAX_FILE_LINES,
MAX_FUNCTION_LINES; tests/ is not checked)."""
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
    "portmap": {"core"},
    "node": {"core", "crypto", "wire", "dht", "portmap", "transfer", "sim"},
    # libpatchswarm's C API (include/patchswarm/patchswarm.h): composes the daemon
    "embed": {"core", "crypto", "wire", "dht", "transfer", "node"},
}
# third-party header prefix -> the only module that may include it
THIRD_PARTY = {
    "sodium": "crypto",
    "msgpack": "wire",
    "opendht": "dht",
    "uv.h": "transfer",
    "httplib.h": "transfer",
    "miniupnpc/": "portmap",
    "natpmp.h": "portmap",
    "CLI/": "node",
    "nlohmann/": "node",
    "toml++/": "node",
    "spdlog/": "node",
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
# The files of node/ that may include sim/: the `patchswarm sim` command, built
# into the executable only (CMakeLists.txt), so that the daemon's code does not
# link the simulator.
SIM_IN_NODE = {"cli_sim.cpp"}
MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 80


def code_only(text):
    """The text with comments, string and character literals blanked out and
    preprocessor lines emptied; newlines are kept, so line numbers still hold."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":  # a directive, with its continuations
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                i += 1
            continue
        if c == "\n":
            at_line_start = True
            out.append(c)
            i += 1
            continue
        if not c.isspace():
            at_line_start = False
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
            continue
        raw = re.match(r'R"([^(\s]*)\(', text[i:i + 20]) if c == "R" and (i == 0 or not text[i - 1].isalnum()) else None
        if raw:
            close = ")" + raw.group(1) + '"'
            end = text.find(close, i + raw.end())
            end = n if end < 0 else end + len(close)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
            continue
        if c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # a digit separator: 1'000
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def long_functions(text):
    """(name, first line, line count) of each function body over the budget.
    A brace opens a function body when it is not inside one already and the
    text before it (since the last ; { or } at that level) has a parameter
    list and is not a class, struct, enum, union or namespace head."""
    code = code_only(text)
    found = []
    stack = []  # (kind, start line, header)
    head_start = 0
    line = 1
    for i, c in enumerate(code):
        if c == "\n":
            line += 1
        elif c == "{":
            header = code[head_start:i]
            in_function = any(kind == "function" for kind, _, _ in stack)
            words = re.findall(r"[A-Za-z_]\w*", header)
            if in_function:
                kind = "block"
            elif any(w in ("namespace", "class", "struct", "enum", "union") for w in words[:3]) and "(" not in header:
                kind = "scope"
            elif ")" in header and not re.search(r"=\s*$", header.strip()):
                kind = "function"
            else:
                kind = "block"
            first = line - header.lstrip().count("\n")  # the line the head starts on
            stack.append((kind, first if kind == "function" else line, header))
            head_start = i + 1
        elif c == "}":
            if stack:
                kind, start, header = stack.pop()
                if kind == "function" and line - start + 1 > MAX_FUNCTION_LINES:
                    name = re.findall(r"([~\w:]+(?:operator\W+)?)\s*\(", header)
                    found.append((name[0] if name else "?", start, line - start + 1))
            head_start = i + 1
        elif c == ";":
            head_start = i + 1
    return found


def size_budgets(path, rel):
    text = path.read_text()
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if lines > MAX_FILE_LINES:
        errors.append(f"{rel}: {lines} lines; at most {MAX_FILE_LINES} (split it by concern)")
    for name, start, count in long_functions(text):
        errors.append(f"{rel}:{start}: {name} is {count} lines; at most {MAX_FUNCTION_LINES} (split it by concern)")


errors = []
for module, allowed in ALLOWED.items():
    for path in sorted((ROOT / module).glob("*.[ch]pp")):
        size_budgets(path, path.relative_to(ROOT))
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            header = m.group(2)
            where = f"{path.relative_to(ROOT)}:{lineno}"
            top = header.split("/", 1)[0]
            if m.group(1) == '"' and top in ALLOWED and top != module and top not in allowed:
                errors.append(f"{where}: {module}/ must not include {header} (a higher or sibling module)")
            if m.group(1) == '"' and top == "sim" and module == "node" and path.name not in SIM_IN_NODE:
                errors.append(f"{where}: only {', '.join(sorted(SIM_IN_NODE))} of node/ may include sim/ "
                              "(it is linked into the patchswarm executable alone, not into the daemon's ps_node)")
            for prefix, owner in THIRD_PARTY.items():
                if header.startswith(prefix) and module != owner:
                    errors.append(f"{where}: <{header}> belongs to {owner}/ only")

# CTest's doctest discovery splits a test name at ';': such a test "passes"
# without running.
for path in sorted((ROOT / "tests").glob("*.cpp")):
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r'\s*TEST_CASE\("([^"]*)"', line)
        if m and ";" in m.group(1):
            errors.append(f"{path.relative_to(ROOT)}:{lineno}: a test name with ';' is split by CTest and never runs")

for e in errors:
    print(e)
print(f"layering: {len(errors)} violations")
sys.exit(1 if errors else 0)

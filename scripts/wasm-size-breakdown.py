#!/usr/bin/env python3
"""Where a wasm module's code goes: function body sizes from the code section, named from the
name section, summed by crate (and by module for talkback's own crates).

    scripts/wasm-size-breakdown.py module.wasm [--top N]

The module must keep its names (`wasm-bindgen --keep-debug`, `wasm-opt -g`);
scripts/wasm-size-breakdown.sh builds such a module from the npm package's build. Reads the
binary format directly (https://webassembly.github.io/spec/core/binary/), so it needs nothing
but Python.
"""
import collections
import re
import sys


def leb(data, pos):
    """An unsigned LEB128 at pos: (value, next position)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def sections(data):
    """(id, payload start, payload end, custom section name or None) for each section."""
    if data[:4] != b"\0asm":
        sys.exit("not a wasm module")
    pos = 8
    while pos < len(data):
        sid = data[pos]
        size, pos = leb(data, pos + 1)
        end = pos + size
        name = None
        if sid == 0:
            n, p = leb(data, pos)
            name = data[p : p + n].decode()
        yield sid, pos, end, name
        pos = end


def imported_functions(data, start):
    count, pos = leb(data, start)
    functions = 0
    for _ in range(count):
        for _ in range(2):  # module and field names
            n, pos = leb(data, pos)
            pos += n
        kind = data[pos]
        pos += 1
        if kind == 0:  # function: a type index
            _, pos = leb(data, pos)
            functions += 1
        elif kind == 1:  # table: reftype, limits
            pos += 1
            flags, pos = leb(data, pos)
            _, pos = leb(data, pos)
            if flags & 1:
                _, pos = leb(data, pos)
        elif kind == 2:  # memory: limits
            flags, pos = leb(data, pos)
            _, pos = leb(data, pos)
            if flags & 1:
                _, pos = leb(data, pos)
        else:  # global: valtype, mutability
            pos += 2
    return functions


def function_names(data, start, end):
    _, pos = leb(data, start)  # the section's own name
    pos += _
    names = {}
    while pos < end:
        sub = data[pos]
        size, pos = leb(data, pos + 1)
        if sub == 1:
            count, p = leb(data, pos)
            for _ in range(count):
                index, p = leb(data, p)
                n, p = leb(data, p)
                names[index] = data[p : p + n].decode(errors="replace")
                p += n
        pos += size
    return names


def crate_of(name):
    name = re.sub(r"\[[0-9a-f]+\]|::h[0-9a-f]{16}$", "", name)
    own = re.search(r"talkback_(core|wasm)::(\w+)(?:::(\w+))?", name)
    if own:
        crate, module, sub = own.groups()
        key = f"talkback_{crate}::{module}"
        if module in ("client", "connection", "protocol") and sub and sub[0].islower():
            key += f"::{sub}"
        return key
    other = re.search(r"(?:^|[<\s&])(_?[a-z][a-z0-9_]*)::", name)
    return other.group(1) if other else "(shims and unnamed)"


def main():
    args = sys.argv[1:]
    top = 0
    if "--top" in args:
        top = int(args[args.index("--top") + 1])
    data = open(args[0], "rb").read()
    imports, bodies, names, data_size = 0, [], {}, 0
    for sid, start, end, custom in sections(data):
        if sid == 2:
            imports = imported_functions(data, start)
        elif sid == 10:
            count, pos = leb(data, start)
            for _ in range(count):
                size, body = leb(data, pos)
                bodies.append(size + (body - pos))
                pos = body + size
        elif sid == 11:
            data_size = end - start
        elif custom == "name":
            names = function_names(data, start, end)
    totals = collections.Counter()
    functions = []
    for i, size in enumerate(bodies):
        name = names.get(imports + i, f"func[{imports + i}]")
        totals[crate_of(name)] += size
        functions.append((size, name))
    code = sum(bodies)
    print(f"{'bytes':>8}  crate or module (code section {code} B, data section {data_size} B)")
    for key, size in totals.most_common():
        print(f"{size:>8}  {key}")
    if top:
        print(f"\nlargest {top} functions:")
        for size, name in sorted(functions, reverse=True)[:top]:
            print(f"{size:>8}  {name[:150]}")


if __name__ == "__main__":
    main()

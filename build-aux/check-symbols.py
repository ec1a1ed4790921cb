#!/usr/bin/env python3
"""Checks the exported ABI: the functions declared in the header, the names in the version
script and the dynamic symbols libpcibind.so exports must be the same set, every export must
carry a PCIBIND_* version, and nothing else may be exported. Each function's doc comment in
the header carries one "@since X.Y" mark, and X.Y is the version node (PCIBIND_X.Y) the
function is listed in and exported at (the README's "ABI policy").

Usage: check-symbols.py [--prefix P --node NODE] HEADER VERSION_SCRIPT LIBRARY
With --prefix and --node (the test kit, libpcibind-testkit.so): the functions are those named
P*, the version script may list them by the glob P*, every one is exported at NODE, and there
are no @since marks."""
import re
import subprocess
import sys


def header_functions(path, prefix="pcibind_"):
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return set(re.findall(r"\b(" + prefix + r"\w+)\s*\(", text)) - {"pcibind_log_fn"}


def header_since_marks(path):
    """{function: [the versions of its @since marks]}, from the doc comment before each."""
    marks = {}
    for doc, name in re.findall(r"/\*\*((?:(?!\*/).)*)\*/\s*(?:PCIBIND_\w+\s+)?[\w\s*]*?"
                                r"\b(pcibind_\w+)\s*\(", open(path).read(), flags=re.S):
        marks[name] = re.findall(r"@since\s+(\S+)", doc)
    return marks


def version_script_nodes(path):
    """{function: node} from the version script."""
    text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
    nodes = {}
    for node, body in re.findall(r"\b(PCIBIND_[\w.]+)\s*\{(.*?)\}", text, flags=re.S):
        for name in re.findall(r"\b(pcibind_\w+)\s*;", body):
            nodes[name] = node
    return nodes


def version_script_names(path):
    text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
    return set(re.findall(r"\b(pcibind_\w+)\s*;", text))


def exported(lib):
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", lib], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(f) < 8 or not f[0].rstrip(":").isdigit():
            continue
        typ, bind, ndx, name = f[3], f[4], f[6], f[7]
        if ndx == "UND" or bind == "LOCAL" or typ in ("SECTION", "FILE"):
            continue
        base, _, version = name.partition("@")
        syms[base] = (typ, version.lstrip("@"))
    return syms


def main_testkit(prefix, node, header, script, lib):
    """Every function declared is exported at node, and nothing else is exported."""
    declared = header_functions(header, prefix)
    syms = exported(lib)
    errors = []
    text = re.sub(r"/\*.*?\*/", "", open(script).read(), flags=re.S)
    if not re.search(r"\b" + re.escape(node) + r"\s*\{[^}]*\b" + re.escape(prefix) + r"\*;", text):
        errors.append(f"the version script does not export {prefix}* at {node}")
    funcs = {n for n, (typ, _) in syms.items() if typ == "FUNC"}
    if funcs != declared:
        errors.append(f"header vs exports: not exported {sorted(declared - funcs)},"
                      f" exported but not declared {sorted(funcs - declared)}")
    for name, (typ, version) in sorted(syms.items()):
        if typ == "OBJECT" and name == node:
            continue  # the version node's definition
        if version != node:
            errors.append(f"{name} ({typ}) exported at {version or 'no version'}, not {node}")
        if not name.startswith(prefix):
            errors.append(f"{name} ({typ}) exported without the prefix {prefix}")
    for e in errors:
        print("error:", e)
    if not errors:
        print(f"{len(funcs)} functions exported, all at {node}, all declared in the header")
    return 1 if errors else 0


def main():
    if sys.argv[1] == "--prefix" and sys.argv[3] == "--node":
        return main_testkit(sys.argv[2], sys.argv[4], *sys.argv[5:8])
    header, script, lib = sys.argv[1:4]
    declared = header_functions(header)
    listed = version_script_names(script)
    syms = exported(lib)
    errors = []
    if declared != listed:
        errors.append(f"header vs version script: only in header {sorted(declared - listed)},"
                      f" only in script {sorted(listed - declared)}")
    funcs = {n for n, (typ, _) in syms.items() if typ == "FUNC"}
    if funcs != declared:
        errors.append(f"header vs exports: not exported {sorted(declared - funcs)},"
                      f" exported but not declared {sorted(funcs - declared)}")
    for name, (typ, version) in sorted(syms.items()):
        if typ == "OBJECT" and name.startswith("PCIBIND_"):
            continue  # version node definitions
        if not version.startswith("PCIBIND_"):
            errors.append(f"{name} ({typ}) exported without a PCIBIND_* version")
        if not name.startswith("pcibind_") and not name.startswith("PCIBIND_"):
            errors.append(f"{name} ({typ}) exported but is not part of the API")
    since = header_since_marks(header)
    nodes = version_script_nodes(script)
    for name in sorted(declared):
        marks = since.get(name, [])
        if len(marks) != 1:
            errors.append(f"{name}: its doc comment needs exactly one '@since X.Y', has {marks}")
            continue
        node = f"PCIBIND_{marks[0]}"
        if nodes.get(name) != node:
            errors.append(f"{name}: @since {marks[0]} but listed in {nodes.get(name)}"
                          " in the version script")
        if name in syms and syms[name][1] != node:
            errors.append(f"{name}: @since {marks[0]} but exported at {syms[name][1]}")
    for e in errors:
        print("error:", e)
    if not errors:
        print(f"{len(funcs)} functions exported, all versioned, all declared in the header,"
              " each marked with the release of its version node")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

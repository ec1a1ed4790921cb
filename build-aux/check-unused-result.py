#!/usr/bin/env python3
"""Checks that a C consumer built with -Werror is stopped when it ignores a result: every
function of the header that returns int must carry PCIBIND_WARN_UNUSED_RESULT, a file calling
each of them as a bare statement must fail to compile with -Werror with one unused-result
diagnostic per function, and the same calls with their results used must compile cleanly
(so the failure is the attribute's doing, not a mistake in the generated calls).

Usage: check-unused-result.py INCLUDE_DIR CC...  (the C compiler command, with its arguments)
"""
import os
import re
import subprocess
import sys
import tempfile


def declarations(header):
    text = re.sub(r"/\*.*?\*/", "", open(header).read(), flags=re.S)
    text = re.sub(r"^\s*#.*$", "", text, flags=re.M)
    # [marker] return-type name(params);  -- one per exported function.
    for m in re.finditer(r"(PCIBIND_WARN_UNUSED_RESULT\s+)?((?:const\s+)?\w+[\s*]+)"
                         r"\b(pcibind_\w+)\s*\(([^;{]*?)\)\s*;", text):
        marked, ret, name, params = m.groups()
        if name == "pcibind_log_fn":
            continue
        nparams = 0 if params.strip() in ("", "void") else params.count(",") + 1
        yield name, ret.strip(), bool(marked), nparams


def compile_c(cmd, source, tmp):
    path = os.path.join(tmp, "consumer.c")
    with open(path, "w") as f:
        f.write(source)
    return subprocess.run(cmd + [path, "-o", os.path.join(tmp, "consumer.o")],
                          capture_output=True, text=True)


def main():
    include, *cc = sys.argv[1:]
    funcs = list(declarations(os.path.join(include, "pcibind.h")))
    errors = [f"{name} returns int but is not marked PCIBIND_WARN_UNUSED_RESULT"
              for name, ret, marked, _ in funcs if ret == "int" and not marked]
    errors += [f"{name} returns {ret} but is marked PCIBIND_WARN_UNUSED_RESULT"
               for name, ret, marked, _ in funcs if ret != "int" and marked]
    marked = [(name, n) for name, _, m, n in funcs if m]
    if not marked:
        errors.append("no function is marked PCIBIND_WARN_UNUSED_RESULT")

    def call(name, n):
        return f"{name}({', '.join(['0'] * n)})"

    ignored = "#include <pcibind.h>\nvoid consumer(void);\nvoid consumer(void)\n{\n" + "".join(
        f"    {call(name, n)};\n" for name, n in marked) + "}\n"
    used = "#include <pcibind.h>\nint consumer(void);\nint consumer(void)\n{\n    int rc = 0;\n" + \
        "".join(f"    rc |= {call(name, n)};\n" for name, n in marked) + "    return rc;\n}\n"
    cmd = cc + ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", include, "-c"]
    with tempfile.TemporaryDirectory() as tmp:
        ok = compile_c(cmd, used, tmp)
        if ok.returncode != 0:
            errors.append("the calls with their results used do not compile:\n" + ok.stderr)
        bad = compile_c(cmd, ignored, tmp)
        if bad.returncode == 0:
            errors.append("ignoring every result compiled without an error under -Werror")
        # GCC: "ignoring return value of 'f' declared with attribute 'warn_unused_result'";
        # Clang: "ignoring return value of function declared with 'warn_unused_result'
        # attribute", the call quoted on the next lines.
        for name, _ in marked:
            if not re.search(rf"\b{name}\b[^\n]*warn_unused_result|warn_unused_result"
                             rf"[^\n]*\n[^\n]*\b{name}\(", bad.stderr):
                errors.append(f"ignoring the result of {name} was not reported")
    for e in errors:
        print("error:", e)
    if not errors:
        print(f"{len(marked)} functions return int, each marked warn_unused_result; ignoring"
              f" any of their results fails a -Werror build ({' '.join(cc)})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

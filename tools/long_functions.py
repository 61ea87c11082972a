#!/usr/bin/env python3
"""Lists the functions of src/ (or the given files/directories) longer than a limit, longest first.

Uses Universal Ctags (function definitions with their end lines); lambdas are not counted on their own (they are
part of the function that holds them). Usage:

    tools/long_functions.py [--limit 80] [PATH ...]      # default PATH: src

Exit status 0 always: it is a report, not a gate (the style rule is "no function over ~80 lines").
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys


def functions(paths):
    ctags = shutil.which("ctags")
    if ctags is None:
        sys.exit("long_functions.py: Universal Ctags (ctags) is not installed (apt-get install universal-ctags)")
    output = subprocess.run(
        [ctags, "--output-format=json", "--fields=+ne", "--kinds-C++=f", "--languages=C++", "-R", "-o", "-", *paths],
        check=True, capture_output=True, text=True).stdout
    for line in output.splitlines():
        tag = json.loads(line)
        if tag.get("_type") != "tag" or tag["name"].startswith("__anon") or "end" not in tag:
            continue
        yield tag["path"], tag["line"], tag["end"] - tag["line"] + 1, tag.get("scope", ""), tag["name"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=80, help="report functions longer than this many lines")
    parser.add_argument("paths", nargs="*", default=["src"])
    args = parser.parse_args()
    rows = sorted((f for f in functions(args.paths) if f[2] > args.limit), key=lambda f: -f[2])
    for path, line, length, scope, name in rows:
        scope = "::".join("(anonymous)" if part.startswith("__anon") else part for part in scope.split("::") if part)
        qualified = f"{scope}::{name}" if scope else name
        print(f"{length:5d}  {pathlib.Path(path)}:{line}  {qualified}")
    sys.stdout.flush()
    print(f"{len(rows)} functions over {args.limit} lines", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What cantools' strict mode says about DBC files (driven by tests/it/can_peers.rs).

    cantools_strict.py DBC...

One JSON object per file: {"dbc": PATH, "refused": BOOL, "message": TEXT}. Loading is
`cantools.database.load_file(path, strict=True)`; warnings cantools logs are not collected.
"""
import json
import sys

import cantools


def main():
    for path in sys.argv[1:]:
        try:
            cantools.database.load_file(path, strict=True)
            answer = {"dbc": path, "refused": False, "message": ""}
        except Exception as e:  # cantools' refusal, whatever its type
            answer = {"dbc": path, "refused": True, "message": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()

"""Kept for old habits: the same as `bench.py --quick` (about a minute).

    .venv/bin/python bench/quick.py [bench.py options]

The side-by-side benchmark with fiche, nginx and pinnwand lives in bench.py;
this only starts it in quick mode and passes any other options through.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    bench = Path(__file__).resolve().with_name("bench.py")
    os.execv(sys.executable, [sys.executable, str(bench), "--quick", *sys.argv[1:]])

"""Where the emulator reads the deployed metadata: the checkout's ``apex/``, or the packaged copy of it.

The emulator enforces what the admin deploys (custom objects and fields: :mod:`devkit.org.schema`; credential header
formulas: :mod:`devkit.org.credentials`), so it reads the very ``-meta.xml`` files in
``apex/force-app/main/default``. An install that is not a checkout (``pip install .``, a wheel) has no
``apex/`` folder, so the files it needs are also shipped inside the package, in ``apex_snapshot/``; a test
keeps that copy byte-for-byte equal to ``apex/`` (``python -m devkit.org.apexsource --write`` refreshes it).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2] / "apex" / "force-app" / "main" / "default"
SNAPSHOT = Path(__file__).with_name("apex_snapshot")
MIRRORED = (
    "externalCredentials/*.externalCredential-meta.xml",
    "namedCredentials/*.namedCredential-meta.xml",
    "objects/*/fields/*.field-meta.xml",
    "objects/*/*.object-meta.xml",
)
"""The metadata the emulator reads, relative to ``force-app/main/default``."""


def source_dir() -> Path:
    """``apex/force-app/main/default`` of this checkout when there is one, else the packaged copy."""
    return CHECKOUT if CHECKOUT.is_dir() else SNAPSHOT


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for pattern in MIRRORED for p in sorted(root.glob(pattern))}


def differences() -> list[str]:
    """Paths whose packaged copy is missing, extra or different (empty when the snapshot is current)."""
    want, have = _files(CHECKOUT), _files(SNAPSHOT)
    return sorted(name for name in want.keys() | have.keys() if want.get(name) != have.get(name))


def refresh() -> None:
    """Make ``apex_snapshot/`` an exact copy of the mirrored files of ``apex/``."""
    if SNAPSHOT.exists():
        shutil.rmtree(SNAPSHOT)
    for name, data in _files(CHECKOUT).items():
        target = SNAPSHOT / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description="Copy the metadata the org emulator reads into the package.")
    parser.add_argument("--write", action="store_true",
                        help="refresh devkit/org/apex_snapshot (default: list what differs)")
    args = parser.parse_args()
    if args.write:
        refresh()
    for name in differences():
        print(f"differs: {name}")


if __name__ == "__main__":
    main()

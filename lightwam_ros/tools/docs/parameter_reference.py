"""Writes docs/parameters.md, the reference of every node's parameters, from the parameter tables
the nodes declare and validate from (``lightwam_ros.ros.node_schemas``), so it cannot drift::

    python -m lightwam_ros.tools.docs.parameter_reference          # rewrite docs/parameters.md
    python -m lightwam_ros.tools.docs.parameter_reference --check  # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lightwam_ros.ros.node_schemas import NODE_SCHEMAS
from lightwam_ros.ros.parameter_schema import schema_markdown

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "parameters.md"
COMMAND = "python -m lightwam_ros.tools.docs.parameter_reference"

_HEADER = f"""# Node parameters

Generated from the nodes' parameter tables (`lightwam_ros/ros/*_params.py`) by `{COMMAND}`;
do not edit by hand.  A test fails when this file is stale.

Names with `<role>`, `<arm>` or `<joint>` are families, one parameter per camera role, arm or
joint of the embodiment, keyed by name (as ros2_control's joint limits), e.g.
`cameras.head.topic` or `joint_limits.left_finger.max_velocity`; a key the embodiment does not
have is refused by name.  "run time: yes" marks the parameters `ros2 param set` may change
while the node runs; a change of any other is refused with the reason.  Numbers typed `double`
accept integers too.  The files in `config/` hold only values that differ from these defaults.
"""


def reference_text() -> str:
    """The whole reference, one section per node kind."""
    return "\n".join([_HEADER, *(schema_markdown(schema) for schema in NODE_SCHEMAS.values())])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REFERENCE, help=f"where to write (default {REFERENCE})")
    parser.add_argument("--check", action="store_true", help="only check that the file is current")
    args = parser.parse_args(argv)
    text = reference_text()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

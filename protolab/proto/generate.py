"""Regenerate lab_pb2.py, lab_pb2.pyi and lab_pb2_grpc.py from lab.proto with grpcio-tools.

    python -m protolab.proto.generate [OUT_DIR]

The output depends only on lab.proto and the grpcio-tools version (pinned by
pyproject), so tests regenerate into a temporary directory and compare.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "lab.proto"
GENERATED = ("lab_pb2.py", "lab_pb2.pyi", "lab_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc  # build-time tool, not needed at run time

    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={HERE}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(HERE / PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {HERE / PROTO}")
    grpc_module = out_dir / "lab_pb2_grpc.py"
    # protoc writes `import lab_pb2`; make it a package-relative import.
    text = grpc_module.read_text().replace(
        "import lab_pb2 as lab__pb2", "from protolab.proto import lab_pb2 as lab__pb2"
    )
    grpc_module.write_text(text)
    return [out_dir / name for name in GENERATED]


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)

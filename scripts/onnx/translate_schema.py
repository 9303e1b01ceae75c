"""Writes ONNX's schema as proto3 (no ONNX-ML extensions, package `onnx`) to the path given.

The source is the onnx.proto shipped inside the installed `onnx` wheel, translated with onnx's own
`onnx.gen_proto.translate`, so the Rust messages follow the newest schema of that release.
One deliberate change: proto3 has no field presence for plain scalars, so an attribute such as
`keepdims = 0` would lose its `i` field on re-encoding and fail onnx.checker ("should contain one
and only one value field"). AttributeProto's scalar value fields `f`, `i`, `s` are therefore
marked proto3 `optional` (prost: `Option<_>`), which keeps their presence as proto2 does.

Usage: python scripts/onnx/translate_schema.py OUT.proto
"""

import os
import re
import sys

import onnx
from onnx import gen_proto


def keep_attribute_presence(text: str) -> str:
    """Marks `float f`, `int64 i`, `bytes s` of message AttributeProto as proto3 `optional`."""
    start = text.index("message AttributeProto {")
    end = text.index("\n}\n", start)
    block = text[start:end]
    new_block, count = re.subn(r"^(\s*)(float f|int64 i|bytes s) = ", r"\1optional \2 = ", block, flags=re.M)
    if count != 3:
        raise SystemExit(f"expected the 3 scalar value fields in AttributeProto, found {count}")
    return text[:start] + new_block + text[end:]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: translate_schema.py OUT.proto")
    src_path = os.path.join(os.path.dirname(onnx.__file__), "onnx.proto")
    with open(src_path, encoding="utf-8") as f:
        source = f.read()
    text = gen_proto.translate(source, proto=3, onnx_ml=False, package_name="onnx")
    text = keep_attribute_presence(text)
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()

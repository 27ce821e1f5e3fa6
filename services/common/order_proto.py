"""An assistant turn's block order (`Message.block_order`) between protobuf and the domain."""

from __future__ import annotations

from collections.abc import Sequence

from llmesh.services.common.errors import Violation
from llmesh.services.core.chat import BlockKind, BlockRef
from llmesh.v1 import chat_pb2

__all__ = ["order_from_proto", "order_to_proto"]

_KINDS = {
    chat_pb2.BLOCK_KIND_THINKING: BlockKind.THINKING,
    chat_pb2.BLOCK_KIND_TEXT: BlockKind.TEXT,
    chat_pb2.BLOCK_KIND_TOOL_CALL: BlockKind.TOOL_CALL,
}
_KINDS_TO_PB = {v: k for k, v in _KINDS.items()}


def order_from_proto(
    refs: Sequence[chat_pb2.BlockRef], path: str, violation: Violation
) -> tuple[BlockRef, ...]:
    """A message's block order; a ref of no known kind is a violation at `path`."""
    out = []
    for k, ref in enumerate(refs):
        kind = _KINDS.get(ref.kind)
        if kind is None:
            violation(f"{path}[{k}].kind", "must be THINKING, TEXT or TOOL_CALL")
            continue
        out.append(BlockRef(kind, ref.index, ref.text_length))
    return tuple(out)


def order_to_proto(order: Sequence[BlockRef]) -> list[chat_pb2.BlockRef]:
    """The protobuf form of a block order."""
    return [
        chat_pb2.BlockRef(kind=_KINDS_TO_PB[r.kind], index=r.index, text_length=r.text_length)
        for r in order
    ]

"""Random search over a typed space, seeded."""

from __future__ import annotations

from methods.base import Method, MethodKind, RandomSearch

__all__ = ["RandomMethod", "RandomSearch"]


class RandomMethod(Method):
    name = "random"
    kind = MethodKind.BLACK_BOX
    horizon_free = True
    description = "random search over the space of each optimizer family"

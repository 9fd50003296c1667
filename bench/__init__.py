"""ohobench: online gradient-based HPO against black-box HPO, on one harness."""

__version__ = "0.1.0"

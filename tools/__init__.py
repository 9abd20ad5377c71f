"""Developer tooling run from the checkout (``python -m tools.NAME``): the regenerators of the
committed tables under codegen/data/. Not part of the wheel, which packages only ``codegen``."""

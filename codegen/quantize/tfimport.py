"""TensorFlow, imported once and quietly: every stage that needs it comes here."""
from __future__ import annotations

import os
import sys

from codegen.toolchain import proc


def import_tensorflow():
    """TensorFlow, imported without the C++ start-up chatter it prints on stderr."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    chatter: list[str] = []
    with proc.native_stderr(chatter):
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    return tf

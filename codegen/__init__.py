"""tfgen: TensorFlow model -> verified TFLite Micro firmware."""

__version__ = "0.1.0"

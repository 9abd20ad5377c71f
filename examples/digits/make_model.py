"""Train the bundled example: a small CNN on scikit-learn's 8x8 digits (shipped with the package,
nothing downloaded). Writes model.keras, calib.npy (training images), x_test.npy and y_test.npy.

    python examples/digits/make_model.py OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def train(out_dir: Path) -> Path:
    from codegen.quantize.tfimport import import_tensorflow
    import_tensorflow()                     # TensorFlow without its C++ start-up chatter
    import keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    net = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    net.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    net.fit(x_train, y_train, epochs=40, batch_size=64, verbose=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    net.save(out_dir / "model.keras")
    np.save(out_dir / "calib.npy", x_train)
    np.save(out_dir / "x_test.npy", x_test)
    np.save(out_dir / "y_test.npy", y_test)
    return out_dir


if __name__ == "__main__":
    out = train(Path(sys.argv[1] if len(sys.argv) > 1 else "out/digits"))
    print(f"trained the digits CNN: {out / 'model.keras'}")

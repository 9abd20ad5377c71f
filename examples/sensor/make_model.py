"""Train a 1-D CNN on a synthetic 3-axis accelerometer signal (generated here, nothing downloaded).

Four activities, 2.56 s windows at 50 Hz (128 samples x 3 axes, m/s^2): resting, walking, running and
shaking. Gravity points along a random direction per window, and about 2 % of windows carry a sensor
glitch: one sample saturated at +-78 m/s^2 (an 8 g sensor), as real accelerometer logs do. Writes
model.keras, calib.npy (training windows), x_test.npy and y_test.npy.

    python examples/sensor/make_model.py OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

RATE_HZ = 50
WINDOW = 128
CLASSES = ("resting", "walking", "running", "shaking")
GLITCH_RATE = 0.02
FULL_SCALE = 78.45          # 8 g


def signals(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` windows (n, 128, 3) float32 and their class labels."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW) / RATE_HZ
    y = rng.integers(0, len(CLASSES), n)
    x = np.empty((n, WINDOW, 3), np.float32)
    for k in range(n):
        g = rng.normal(size=3)
        sig = np.tile(9.81 * g / np.linalg.norm(g), (WINDOW, 1))
        freq, amp = {0: (0.0, 0.0), 1: (rng.uniform(1.5, 2.2), rng.uniform(1.5, 3.0)),
                     2: (rng.uniform(2.5, 3.5), rng.uniform(5.0, 9.0)),
                     3: (rng.uniform(6.0, 10.0), rng.uniform(2.0, 6.0))}[int(y[k])]
        if freq:
            phase = rng.uniform(0, 2 * np.pi, 3)
            weights = rng.uniform(0.3, 1.0, 3)
            sig += amp * weights * np.sin(2 * np.pi * freq * t[:, None] + phase)
            sig += 0.3 * amp * weights * np.sin(4 * np.pi * freq * t[:, None] + 2 * phase)
        sig += rng.normal(scale=0.15, size=sig.shape)
        if rng.random() < GLITCH_RATE:
            sig[rng.integers(WINDOW), rng.integers(3)] = rng.choice([-1.0, 1.0]) * FULL_SCALE
        x[k] = sig
    return x, y


def train(out_dir: Path) -> Path:
    from codegen.quantize.tfimport import import_tensorflow
    import_tensorflow()                     # TensorFlow without its C++ start-up chatter
    import keras

    keras.utils.set_random_seed(0)
    x_train, y_train = signals(1600, seed=1)
    x_test, y_test = signals(400, seed=2)
    net = keras.Sequential([
        keras.Input((WINDOW, 3)),
        keras.layers.Conv1D(16, 7, strides=2, padding="same", activation="relu"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Conv1D(32, 5, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(len(CLASSES), activation="softmax"),
    ])
    net.compile(optimizer=keras.optimizers.Adam(0.005), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    net.fit(x_train, y_train, epochs=30, batch_size=64, verbose=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    net.save(out_dir / "model.keras")
    np.save(out_dir / "calib.npy", x_train)
    np.save(out_dir / "x_test.npy", x_test)
    np.save(out_dir / "y_test.npy", y_test)
    return out_dir


if __name__ == "__main__":
    out = train(Path(sys.argv[1] if len(sys.argv) > 1 else "out/sensor"))
    print(f"trained the 1-D CNN on synthetic accelerometer windows: {out / 'model.keras'}")

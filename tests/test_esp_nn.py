"""ESP boards: the kernels the chip runs (esp-tflite-micro's ESP-NN wrappers over esp-nn's generic C),
pinned, fetched like TFLM and CMSIS-NN, built off the chip and verified against the oracle on the host
(with AddressSanitizer and UBSan) and on the Cortex-M4F in QEMU."""
from __future__ import annotations

import json
import shutil
import tarfile

import pytest

import needs
from codegen.errors import TfgenError
from codegen.project import boards, plan as plan_mod
from codegen.toolchain import esp_nn, fetch, sanitizers
from conftest import model, run_tfgen


def test_the_pinned_esp_nn_comes_through_tfgens_download_and_checksum(tmp_path, monkeypatch):
    needs.esp_nn()
    url = __import__("os").environ.get("TFGEN_ESP_NN_URL")
    if not url:
        needs.lacking("needs TFGEN_ESP_NN_URL (.ci/run points it at ../shared/third_party/esp-nn-1.2.3.tar.gz)")
    monkeypatch.setenv("TFGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(esp_nn.ENV_VAR, raising=False)
    found = esp_nn.resolve()
    assert found.root == esp_nn.ARCHIVE.dir.resolve() and (found.root / "include" / "esp_nn.h").is_file()
    assert fetch.cached(esp_nn.ARCHIVE) is not None
    # an archive whose sources differ from the pinned ones is refused, nothing cached
    src = url.removeprefix("file://")
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(src) as tin, tarfile.open(bad, "w:gz") as tout:
        for m in tin.getmembers():
            f = tin.extractfile(m) if m.isfile() else None
            if m.name.endswith("esp_nn_conv_opt.c"):
                data = f.read() + b"\n/* changed */\n"
                m.size = len(data)
                import io
                f = io.BytesIO(data)
            tout.addfile(m, f)
    monkeypatch.setenv("TFGEN_CACHE_DIR", str(tmp_path / "cache2"))
    monkeypatch.setenv("TFGEN_ESP_NN_URL", f"file://{bad}")
    with pytest.raises(TfgenError, match="do not match the pinned checksum"):
        esp_nn.resolve()
    assert not esp_nn.ARCHIVE.dir.exists()


def test_an_esp32_project_carries_the_kernels_the_chip_runs(tmp_path):
    needs.tflm()
    needs.esp_nn()
    out = tmp_path / "p"
    r = run_tfgen("generate", model("kws_ref_model"), "--board", "esp32", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["kernels"] == f"esp-nn (esp-nn {esp_nn.PINNED_VERSION})"
    assert set(report["optimized_ops"]) == {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                                            "SOFTMAX"}
    assert report["environments"] == ["esp32", "validate", "sim", "qemu"]
    kernels = out / "lib" / "tflm" / "tensorflow" / "lite" / "micro" / "kernels"
    for name in ("conv.cc", "depthwise_conv.cc", "fully_connected.cc", "pooling.cc", "softmax.cc"):
        assert (kernels / "esp_nn" / name).is_file() and not (kernels / name).exists(), name
    assert (kernels / "reshape.cc").is_file()            # no ESP-NN kernel: TFLM's reference one
    lib = out / "lib" / "tflm" / "third_party" / "esp_nn"
    assert (lib / "include" / "esp_nn.h").is_file() and (lib / "src" / "convolution" / "esp_nn_conv_opt.c").is_file()
    assert not list(lib.rglob("*.S"))                    # no assembly: the generic C, as the ESP32 builds it
    ini = (out / "platformio.ini").read_text()
    sim = ini.split("[env:sim]")[1].split("[env:")[0]
    for flag in ("-DESP_NN", "-DCONFIG_NN_OPTIMIZED", "-DCONFIG_IDF_TARGET_ESP32",
                 "-I lib/tflm/third_party/esp_nn/include"):
        assert flag in sim, flag
    assert "platform = espressif32@6.13.0" in ini                      # pinned, as the board file says
    manifest = (out / "src" / "idf_component.yml").read_text()
    assert f'espressif/esp-nn:\n    version: "=={esp_nn.PINNED_VERSION}"' in manifest
    sdkconfig = (out / "sdkconfig.defaults").read_text()
    assert "CONFIG_NN_OPTIMIZED=y" in sdkconfig and "# CONFIG_NN_SKIP_NUDGE is not set" in sdkconfig
    assert "CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y" in sdkconfig
    assert json.loads((out / "tfgen.json").read_text())["build"]["defines"][0] == "-DESP_NN"


@pytest.mark.parametrize("name,core,mhz", [("esp32c3", "riscv32-imc", 160), ("esp32c6", "riscv32-imac", 160)])
def test_the_risc_v_esp_boards(tmp_path, name, core, mhz):
    board = boards.get_board(name)
    assert board.core == core and board.arch == "riscv" and board.chip == name and board.kernels == "esp-nn"
    assert board.platformio.platform == "espressif32@6.13.0" and board.cpu_mhz == mhz
    out = tmp_path / "p"
    r = run_tfgen("generate", model("hello_world_int8"), "--board", name, "-o", out)
    assert r.returncode == 0, r.stderr
    assert f"CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_{mhz}=y" in (out / "sdkconfig.defaults").read_text()
    if (out / "platformio.ini").read_text().count("[env:sim]"):
        assert f"-DCONFIG_IDF_TARGET_{name.upper()}" in (out / "platformio.ini").read_text()
    r = run_tfgen("fit", model("kws_ref_model"), "--board", name, "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["boards"][0]
    assert row["fits"] and row["kernels"] == "esp-nn", row
    text = run_tfgen("fit", model("kws_ref_model"), "--board", name).stdout
    assert "estimated for RISC-V" in text and "esp-nn's generic C" in text, text


def test_fit_says_which_kernels_each_esp_board_runs():
    r = run_tfgen("fit", model("kws_ref_model"))
    assert r.returncode == 0, r.stderr
    assert "esp-nn's assembly on the ESP32-S3" in r.stdout and "esp-nn's generic C" in r.stdout


def test_verify_esp32_runs_the_esp_nn_kernels_byte_exact_on_host_and_qemu():
    needs.cortex_m()
    needs.esp_nn()
    for on, extra in (("host", ("--sanitize",)), ("qemu", ())):
        r = run_tfgen("verify", model("kws_ref_model"), "--board", "esp32", "--on", on, "--vectors", 5, "--json",
                      *extra, timeout=1800)
        assert r.returncode == 0, r.stderr + r.stdout
        v = json.loads(r.stdout)
        assert v["ok"] and v["mismatched_bytes"] == 0 and v["bytes_compared"] == 60
        assert v["board"] == "esp32" and v["kernels"].startswith("esp-nn")
        assert v["ran_on"] == ("host" if on == "host" else "mps2_an386") and v["sanitized"] == bool(extra)
        if on == "qemu":
            assert v["instructions_per_inference"] > 0 and v["target_bits"] == 32


def test_verify_on_the_s3_says_the_chip_runs_assembly():
    needs.tflm()
    needs.esp_nn()
    r = run_tfgen("verify", model("hello_world_int8"), "--board", "esp32s3", "--vectors", 5, "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["ok"] and any("runs esp-nn's assembly for FULLY_CONNECTED" in n for n in v["notes"]), v["notes"]


def test_sanitize_is_for_the_host():
    r = run_tfgen("verify", model("hello_world_int8"), "--board", "esp32", "--on", "qemu", "--sanitize")
    assert r.returncode == 2 and "--sanitize is for the host build" in r.stderr


def test_the_sanitizers_name_the_kernel_that_breaks(tmp_path):
    """A kernel made to write past its output: the plain build may not notice, the sanitized one stops
    and says where."""
    needs.tflm()
    needs.esp_nn()
    from codegen.model.inspection import load_model_bytes, parse_model
    from codegen.oracle import reference
    from codegen.run import verify
    path = model("hello_world_int8")
    data = load_model_bytes(path)
    ir = parse_model(data, path.name)
    inputs = reference.random_inputs(ir, 3, 0)
    prep = verify.prepare(ir, data, boards.get_board("esp32"), inputs, None, "test", out=tmp_path / "p",
                          sanitize=True)
    fc = prep.project / "lib/tflm/tensorflow/lite/micro/kernels/esp_nn/fully_connected.cc"
    text = fc.read_text()
    marker = "TfLiteStatus FullyConnectedEval(TfLiteContext* context, TfLiteNode* node) {"
    assert marker in text
    fc.write_text(text.replace(marker, marker + "\n  { static int tfgen_poke[4]; volatile int i = 4; "
                               "tfgen_poke[i] = 1; }", 1))
    result = verify.build_and_run(prep)
    assert not result.ok
    assert any("the sanitizers stopped the firmware" in n and "esp_nn/fully_connected.cc" in n
               for n in result.notes), result.notes


def test_sanitizer_report_reads_asan_and_ubsan():
    asan = ("==1==ERROR: AddressSanitizer: global-buffer-overflow on address 0x5\n"
            "    #0 0x55 in tflite::Eval(TfLiteContext*, TfLiteNode*) "
            "lib/tflm/tensorflow/lite/micro/kernels/esp_nn/softmax.cc:82\n")
    assert sanitizers.sanitizer_report(asan) == ("the sanitizers stopped the firmware: AddressSanitizer: "
                                              "global-buffer-overflow in lib/tflm/tensorflow/lite/micro/kernels/"
                                              "esp_nn/softmax.cc:82 (tflite::Eval)")
    ub = "lib/tflm/third_party/esp_nn/src/x.c:12:3: runtime error: signed integer overflow: 1 + 2147483647\n"
    assert "signed integer overflow" in sanitizers.sanitizer_report(ub) and "esp_nn/src/x.c:12" in \
        sanitizers.sanitizer_report(ub)
    assert sanitizers.sanitizer_report("all good\n") is None


def test_a_softmax_esp_nn_would_overrun_gets_the_reference_kernel():
    """esp-tflite-micro's ESP-NN softmax sizes its scratch buffer from dims[1]; for a 1x1x1xN input it
    writes 4*N bytes into 4. Such a model's resolver registers TFLM's reference softmax (tfgen's copy of
    the registration), on every ESP board, and says so."""
    from helpers_render import make_ir
    ir = make_ir("conv_softmax")
    sm = next(op for op in ir.operators if op.name == "SOFTMAX")
    shape = list(ir.tensors[sm.inputs[0]].shape)
    assert plan_mod.esp_softmax_overruns(ir) == ([sm.index] if len(shape) != 2 and shape[1] < shape[-1] else [])
    p = plan_mod.make_plan(ir, boards.get_board("esp32"), 1000, None, 0, "test")
    expected = plan_mod.REFERENCE_SOFTMAX if plan_mod.esp_softmax_overruns(ir) else ""
    assert p.registrations[list(p.op_names).index("SOFTMAX")] == expected
    assert all(r == "" for r in plan_mod.make_plan(ir, boards.get_board("mps2_an386"), 1000, needs.tflm(), 0,
                                                   "t").registrations)


@pytest.mark.slow
def test_a_4d_softmax_verifies_with_the_reference_kernel_on_esp32(tmp_path):
    """A real converter model (Conv2D then Softmax over 1x1x1x64) on esp32: generated with TFLM's
    reference softmax registered, byte-exact on the host (sanitized) and on QEMU."""
    needs.cortex_m()
    needs.esp_nn()
    import numpy as np
    from codegen.quantize.tfimport import import_tensorflow
    tf = import_tensorflow()
    x = tf.keras.Input((1, 1, 8), batch_size=1)
    m = tf.keras.Model(x, tf.keras.layers.Softmax(axis=-1)(tf.keras.layers.Conv2D(64, 1)(x)))
    rng = np.random.default_rng(0)
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([rng.standard_normal((1, 1, 1, 8)).astype(np.float32) * 3] for _ in range(50))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    path = tmp_path / "softmax4d.tflite"
    path.write_bytes(c.convert())
    out = tmp_path / "p"
    r = run_tfgen("generate", path, "--board", "esp32", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    assert any("registers TFLM's reference softmax" in n for n in json.loads(r.stdout)["notes"])
    cc = (out / "src" / "tfgen_model.cc").read_text()
    assert "resolver.AddSoftmax(tfgen::Register_SOFTMAX_REFERENCE())" in cc
    assert (out / "src" / "tfgen_softmax.cc").is_file()
    assert "tfgen_softmax.cc" in (out / "src" / "CMakeLists.txt").read_text()
    for on, extra in (("host", ("--sanitize",)), ("qemu", ())):
        r = run_tfgen("verify", path, "--board", "esp32", "--on", on, "--vectors", 20, "--json", *extra,
                      timeout=1800)
        assert r.returncode == 0, r.stderr + r.stdout
        v = json.loads(r.stdout)
        assert v["ok"] and v["mismatched_bytes"] == 0 and "SOFTMAX" not in v["optimized_ops"], v
    # other boards keep TFLM's own registration: the bug is ESP-NN's
    r = run_tfgen("generate", path, "--board", "host", "-o", tmp_path / "h")
    assert r.returncode == 0 and not (tmp_path / "h" / "src" / "tfgen_softmax.cc").exists()
    shutil.rmtree(tmp_path / "h")

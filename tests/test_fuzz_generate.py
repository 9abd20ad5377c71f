"""1,000 seeded mutants of the corpus models through inspect and generate: never a traceback or a
hang, and every project generate accepts compiles.

The same mutations as tests/test_fuzz_inspect.py, over every integer model of ../shared/models/ but
the two largest. In process, as `tfgen generate` runs (with a fixed arena instead of TFLM's
measurement, which test_fuzz_inspect's CLI level covers): parse, the firmware checks, the plan and the
rendered project; each gives a project or one TfgenError line, within a time bound. Weight mutations
leave the generated C++ alone, so the distinct tfgen_model.h/.cc pairs are compiled, each once, with
the harness, warnings as errors.
"""
from __future__ import annotations

import hashlib
import random
import re
import subprocess
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

import needs
from codegen.project import boards, plan, render
from codegen.model import inspection
from codegen.errors import TfgenError
from codegen.toolchain.tflm_tree import INCLUDE_DIRS
from conftest import REPO, SHARED_MODELS
from test_fuzz_inspect import HANG_GUARD_S, _Hang, check_message, hang_guard, random_mutation

pytestmark = pytest.mark.slow
SEED = 20261201
MUTANTS = 1000
SKIPPED = ("mobilenet_v2_quantized_1x3x224x224", "person_detect", "hello_world_float")
GENERATE_LIMIT_S = 5.0


def _models() -> dict[str, bytes]:
    found = {p.stem: p.read_bytes() for p in sorted(SHARED_MODELS.rglob("*.tflite")) if p.stem not in SKIPPED}
    if not found:
        needs.lacking(f"needs the shared test models in {SHARED_MODELS}")
    return found


def _generate(buf: bytes, name: str, board, tree) -> dict:
    ir = inspection.parse_model(buf, f"{name}.tflite")
    inspection.require_tflm_int8(ir)
    project = plan.make_plan(ir, board, 65536, tree, 0, "tfgen generate (fuzz)")
    return render.render_project(project, buf, None)


def _number(m: re.Match) -> str:
    """A literal that any value of its kind could stand in for: an int32 or a float literal."""
    text = m.group(0)
    if text.endswith("f") or "." in text or "e" in text:
        return "F"
    return "I" if -(1 << 31) <= int(text) < (1 << 31) else text


def _shape_of(files: dict) -> str:
    """What of the generated C++ a mutant can change, but its bytes, digest and in-range numbers (an
    int32, a float literal: any of them compiles alike): a key for compiling each distinct project once."""
    text = files["src/tfgen_model.h"] + files["src/tfgen_model.cc"]
    text = re.sub(r"(?m)^//.*$", "", text)                        # the banner (file name, sha256)
    text = re.sub(r"\b[0-9a-f]{64}\b", "SHA", text)
    text = re.sub(r"(?<![\w.])-?\d+(?:\.\d*)?(?:e[-+]?\d+)?f?(?![\w.])", _number, text)
    return hashlib.sha256(text.encode()).hexdigest()


def test_generate_mutants_never_crash_and_what_is_generated_compiles(tmp_path):
    tree = needs.tflm()
    needs.tools("g++")
    board = boards.get_board("host")
    models = _models()
    rng = random.Random(SEED)
    names = sorted(models)
    failures, generated = [], {}
    accepted = refused = 0
    for i in range(MUTANTS):
        name = names[i % len(names)]
        mut = random_mutation(rng, name, len(models[name]))
        buf = mut.apply(models[name])
        start = time.perf_counter()
        try:
            with hang_guard(HANG_GUARD_S):
                files = _generate(buf, name, board, tree)
            accepted += 1
            generated.setdefault(_shape_of(files), (str(mut), files))
        except TfgenError as exc:
            refused += 1
            try:
                check_message(exc)
            except AssertionError as bad:
                failures.append(f"{mut}: {bad}")
        except _Hang:
            failures.append(f"{mut}: still running after {HANG_GUARD_S} s")
        except Exception as exc:                    # anything else is a bug
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(f"{mut}: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")
        if time.perf_counter() - start > GENERATE_LIMIT_S:
            failures.append(f"{mut}: took {time.perf_counter() - start:.1f} s")
    print(f"\n{MUTANTS} mutants of {len(names)} models: {accepted} generated ({len(generated)} distinct "
          f"tfgen_model.h/.cc), {refused} refused in one line")
    assert not failures, f"{len(failures)} of {MUTANTS} mutants broke generate:\n" + "\n".join(failures[:30])
    assert accepted >= MUTANTS // 10 and refused >= MUTANTS // 10

    includes = [f for d in INCLUDE_DIRS for f in ("-isystem", str(tree.root / d))]

    def compile_one(item) -> str | None:
        key, (mut, files) = item
        src = tmp_path / key[:12]
        (src).mkdir()
        for rel, content in files.items():
            if rel.startswith("src/") and rel.count("/") == 1 and rel.endswith(".h"):
                data = content.read_bytes() if hasattr(content, "read_bytes") else (
                    content if isinstance(content, bytes) else content.encode("utf-8"))
                (src / rel[4:]).write_bytes(data)
        (src / "tfgen_model.cc").write_text(files["src/tfgen_model.cc"], encoding="utf-8")
        r = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-DTF_LITE_STATIC_MEMORY",
                            f"-I{src}", f"-I{REPO / 'firmware'}", *includes, str(src / "tfgen_model.cc")],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            return f"{mut}: {r.stderr.strip().splitlines()[0] if r.stderr.strip() else r.returncode}"
        return None
    with ThreadPoolExecutor(max_workers=2) as pool:
        broken = [b for b in pool.map(compile_one, generated.items()) if b]
    assert not broken, f"{len(broken)} of {len(generated)} generated projects do not compile:\n" + "\n".join(broken)

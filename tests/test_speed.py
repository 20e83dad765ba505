"""How the step is computed: the precision by hardware, the candidates measured on a CPU, the cache,
and that every engine computes the same step (float32 to rounding, bfloat16 to its tolerance)."""

from __future__ import annotations

import itertools
import json

import keras
import numpy as np
import pytest

from gan_lib.base.hardware import cpu_facts
from gan_lib.config import GANConfig
from gan_lib.training.engine import Engine
from gan_lib.training.engine_choice import candidate_engines, choose_engine, choose_precision
from gan_lib.training.step import GANTrainer

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`

AMX_XEON = {"model": "Intel(R) Xeon(R) Processor", "features": ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile",
                                                                 "amx_bf16"], "cores": 2}
AVX2_EPYC = {"model": "AMD EPYC 7B12", "features": ["avx2", "fma"], "cores": 2}


def facts(accelerators=(), capability=None, cpu=AVX2_EPYC):
    return {"accelerators": list(accelerators), "gpu_compute_capability": capability, "cpu": cpu}


@pytest.mark.parametrize("hardware, policy", [
    (facts(), "float32"),
    (facts(cpu=AMX_XEON), "mixed_bfloat16"),
    (facts(cpu={**AVX2_EPYC, "features": ["avx2", "avx512f", "avx512_bf16"]}), "mixed_bfloat16"),  # e.g. AMD Zen 4
    (facts(["GPU"], [7, 5]), "mixed_float16"),  # T4
    (facts(["GPU"], [8, 0]), "mixed_bfloat16"),  # A100
    (facts(["TPU"]), "mixed_bfloat16"),
])
def test_auto_precision_follows_the_hardware(hardware, policy):
    choice = choose_precision("auto", hardware)
    assert choice["policy"] == policy and choice["reason"].startswith("auto")


def test_a_precision_that_is_set_is_kept_and_float16_on_a_cpu_is_called_slow():
    assert choose_precision("float32", facts(["GPU"], [8, 0]))["policy"] == "float32"
    assert "slow" in choose_precision("mixed_float16", facts())["reason"]


def test_cpu_features_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse avx2 fma avx512f "
                       "avx512_bf16 amx_tile amx_bf16 amx_int8\n\nprocessor\t: 1\n")
    cpu = cpu_facts(cpuinfo)
    assert cpu["model"] == "Intel(R) Xeon(R) Processor"
    assert cpu["features"] == ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    # oneDNN capped at an ISA level computes as a CPU without the features above it
    capped = cpu_facts(cpuinfo, isa_cap="AVX2")
    assert capped["features"] == ["avx2", "fma"] and capped["onednn_max_cpu_isa"] == "AVX2"
    assert choose_precision("auto", facts(cpu=capped))["policy"] == "float32"
    assert cpu_facts(cpuinfo, isa_cap="avx512_core_bf16")["features"] == ["avx2", "fma", "avx512f", "avx512_bf16"]
    with pytest.raises(ValueError, match="ONEDNN_MAX_CPU_ISA=AVX9"):
        cpu_facts(cpuinfo, isa_cap="AVX9")


def test_the_trainers_precision_stays_with_its_models():
    """Models made after a bfloat16 trainer (the health log's features, the evaluation's classifier)
    compute in float32."""
    trainer = GANTrainer(GANConfig.from_overrides(image_size=32), np.zeros((2, 32, 32, 1), "float32"),
                         engine=Engine("mixed_bfloat16"))
    projection, *rest = trainer.generator.layers
    assert projection.compute_dtype == "float32"  # gan_lib.models.architectures.noise_projection: float32 under every policy
    assert {layer.compute_dtype for layer in rest} == {"bfloat16"}
    assert keras.mixed_precision.global_policy().name == "float32"
    assert keras.layers.Dense(2).compute_dtype == "float32"


def test_a_cpu_measures_each_auto_choice_an_accelerator_takes_stock_layers_and_xla():
    cfg = GANConfig.from_overrides(image_size=32)
    assert set(candidate_engines(cfg, "float32", facts())) == {
        Engine("float32", speed, xla) for speed, xla in itertools.product([True, False], ["whole", "updates"])}
    assert candidate_engines(cfg, "mixed_float16", facts(["GPU"], [7, 5])) == [Engine("mixed_float16", False, "whole")]
    fixed = GANConfig.from_overrides(image_size=32, xla="off", speed_layers="on")
    assert candidate_engines(fixed, "float32", facts()) == [Engine("float32", True, "none")]


def test_the_choice_is_measured_once_per_machine_and_settings_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # the report's step, quick to measure; speed layers: auto
    cfg = GANConfig.from_overrides(preset="report", image_size=32, precision="float32", xla="off")
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 1)).astype("float32")
    engine, record = choose_engine(cfg, images)
    assert record["how"] == "measured now" and set(record["steps_per_s"]) == {
        "float32, speed layers, XLA none", "float32, stock layers, XLA none"}
    assert record["steps_per_s"][f"float32, {'speed' if engine.speed_layers else 'stock'} layers, XLA none"] == \
        max(record["steps_per_s"].values())
    again, second = choose_engine(cfg, images)
    assert again == engine and second["how"].startswith("measured before") and second["steps_per_s"] == record["steps_per_s"]
    other = GANConfig.from_overrides(**{**cfg.to_dict(), "minibatch_stddev": True})
    assert choose_engine(other, images)[1]["how"] == "measured now", "another step: measured again"
    assert len(json.loads((tmp_path / "gan_lib" / "speed_choices.json").read_text())) == 2


ENGINES = [Engine("float32", speed, xla) for speed, xla in itertools.product([True, False], ["none", "updates", "whole"])]
ENGINES += [Engine("mixed_bfloat16", True, "updates"), Engine("mixed_bfloat16", False, "none")]


def test_every_engine_computes_the_same_steps():
    """Three steps of the default recipe (ADA, minibatch stddev, R1, EMA) from the same start and the
    same random draws: float32 engines agree to rounding, bfloat16 to its 8-bit mantissa. (Dropout's
    stateless draws follow another algorithm inside XLA, so whole-step XLA is compared with itself.)"""
    cfg = GANConfig.from_overrides(image_size=32, augment_p=0.5)
    images = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 1)).astype("float32")

    def run(engine):
        """The three steps' losses, and how far they moved G's weights."""
        try:
            trainer = GANTrainer(cfg, images, engine=engine)
            start = np.concatenate([w.ravel() for w in trainer.generator.get_weights()])
            losses = [[float(out[k]) for k in ("d_loss", "g_loss")] for out in (trainer.compiled_step() for _ in range(3))]
            return np.array(losses), np.concatenate([w.ravel() for w in trainer.generator.get_weights()]) - start
        finally:
            keras.mixed_precision.set_global_policy("float32")

    results = {engine: run(engine) for engine in ENGINES}  # the stock float32 engines are the references
    for engine, (losses, moves) in results.items():
        reference_losses, reference_moves = results[Engine("float32", False, "whole" if engine.xla == "whole" else "none")]
        bfloat16 = engine.precision == "mixed_bfloat16"
        np.testing.assert_allclose(losses, reference_losses, rtol=0.05 if bfloat16 else 1e-3, err_msg=str(engine))
        # Adam moves each weight by about the learning rate whatever its gradient's size, so where a
        # gradient is near zero its sign is rounding noise: bfloat16 moves agree in direction, not
        # weight by weight (cosine 0.46 measured; float32 engines 0.999)
        cosine = moves @ reference_moves / np.linalg.norm(moves) / np.linalg.norm(reference_moves)
        assert cosine > (0.3 if bfloat16 else 0.99), (engine, cosine)

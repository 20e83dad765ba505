"""What processor this is, read from the operating system (no TensorFlow): the model name and the
instruction-set features that decide how fast each precision runs, so a speed figure, a precision
choice or a cached measurement always names the machine it belongs to.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Features that change the speed of the training step's convolutions and matmuls (oneDNN picks
# its kernels by them): AVX2/AVX-512 for float32; AMX and AVX-512-BF16 compute bfloat16 natively.
SPEED_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
BFLOAT16_FEATURES = ("amx_bf16", "avx512_bf16")
# oneDNN's ISA levels (ONEDNN_MAX_CPU_ISA caps its kernels at one, e.g. AVX2), each with the
# SPEED_FEATURES it adds: a capped CPU computes as one without the rest (docs/hardware.md).
ISA_LEVELS = (("SSE41", ()), ("AVX", ()), ("AVX2", ("avx2", "fma")), ("AVX2_VNNI", ()), ("AVX2_VNNI_2", ()),
              ("AVX512_CORE", ("avx512f",)), ("AVX512_CORE_VNNI", ()), ("AVX512_CORE_BF16", ("avx512_bf16",)),
              ("AVX512_CORE_FP16", ("avx512_fp16",)), ("AVX512_CORE_AMX", ("amx_tile", "amx_bf16")),
              ("AVX512_CORE_AMX_FP16", ("amx_fp16",)))
ISA_CAPS = {name: tuple(f for _, added in ISA_LEVELS[:i + 1] for f in added) for i, (name, _) in enumerate(ISA_LEVELS)}
ISA_CAPS["ALL"] = SPEED_FEATURES


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo"), isa_cap: str | None = None) -> dict:
    """The CPU's model name, the SPEED_FEATURES it has (those oneDNN's ISA cap allows, if one is
    set: `isa_cap`, else $ONEDNN_MAX_CPU_ISA) and its logical core count. Off Linux the model is
    `platform.processor()` and no feature is known (auto precision then stays float32)."""
    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    cap = (isa_cap or os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    if cap not in ISA_CAPS:
        raise ValueError(f"ONEDNN_MAX_CPU_ISA={cap}: not an ISA this code knows; one of {sorted(ISA_CAPS)}")
    facts = {"model": model, "features": [f for f in SPEED_FEATURES if f in flags and f in ISA_CAPS[cap]],
             "cores": os.cpu_count()}
    return facts if cap == "ALL" else {**facts, "onednn_max_cpu_isa": cap}


def fast_bfloat16(cpu: dict) -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX-512-BF16)."""
    return any(f in cpu["features"] for f in BFLOAT16_FEATURES)

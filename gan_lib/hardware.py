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


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """The CPU's model name, the SPEED_FEATURES it has and its logical core count. Off Linux the
    model is `platform.processor()` and no feature is known (auto precision then stays float32)."""
    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    return {"model": model, "features": [f for f in SPEED_FEATURES if f in flags], "cores": os.cpu_count()}


def fast_bfloat16(cpu: dict) -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX-512-BF16)."""
    return any(f in cpu["features"] for f in BFLOAT16_FEATURES)

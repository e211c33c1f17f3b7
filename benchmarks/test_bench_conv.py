"""pytest-benchmark groups, one per case and mode: fastconv's algorithms beside tf.nn.conv2d.

    pytest benchmarks/ --benchmark-only                          # full suite
    FASTCONV_BENCH_QUICK=1 pytest benchmarks/ --benchmark-only   # small shapes
"""
import pytest

import contenders
from bench_conv import quick_conv, quick_pool
from cases import CONV_CASES, POOL_CASES
from conftest import QUICK

CONV = [quick_conv(c) if QUICK else c for c in CONV_CASES]
POOL = [quick_pool(c) if QUICK else c for c in POOL_CASES]
CONV_CONTENDERS = contenders.ALGORITHMS + ("tensorflow",)


@pytest.mark.parametrize("contender", CONV_CONTENDERS)
@pytest.mark.parametrize("case", CONV, ids=lambda c: c.name)
def test_forward(run, tf, case, contender):
    run(f"forward {case.name}", contenders.forward(case, tf), contender)


@pytest.mark.parametrize("contender", CONV_CONTENDERS)
@pytest.mark.parametrize("case", CONV, ids=lambda c: c.name)
def test_forward_backward(run, tf, case, contender):
    run(f"forward+backward {case.name}", contenders.backward(case, tf), contender)


@pytest.mark.parametrize("contender", ("fastconv", "tensorflow"))
@pytest.mark.parametrize("with_backward", (False, True), ids=("forward", "forward+backward"))
@pytest.mark.parametrize("kind", ("max", "avg"))
@pytest.mark.parametrize("case", POOL, ids=lambda c: c.name)
def test_pooling(run, tf, case, kind, with_backward, contender):
    mode = "forward+backward" if with_backward else "forward"
    run(f"{kind} pool {mode} {case.name}", contenders.pool(case, tf, kind, with_backward), contender)

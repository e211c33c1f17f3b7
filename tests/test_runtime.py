"""Threads, OpenMP and SIMD dispatch: what the build reports and what the user can set."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv as fc


def test_openmp_and_isa_are_reported():
    assert isinstance(fc.openmp_enabled(), bool)
    assert fc.simd_isa() in ("base", "avx2", "avx512")


def test_set_and_get_num_threads():
    fc.set_num_threads(3)
    assert fc.get_num_threads() == (3 if fc.openmp_enabled() else 1)
    fc.set_num_threads(None)
    assert fc.get_num_threads() >= 1


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                                        (True, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, error):
    with pytest.raises(error, match="set_num_threads: n must be a positive int or None"):
        fc.set_num_threads(bad)


def _run(code, tmp_path, **env):
    """Run ``code`` in a fresh interpreter, from a folder where no source checkout shadows the
    installed fastconv (``python -c`` puts the working directory first on the path)."""
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                          cwd=tmp_path, check=True).stdout.strip()


def test_default_threads_follow_omp_num_threads(tmp_path):
    if not fc.openmp_enabled():
        pytest.skip("serial build")
    assert _run("import fastconv; print(fastconv.get_num_threads())", tmp_path, OMP_NUM_THREADS="3") == "3"


@pytest.mark.parametrize("user_env, expected", [
    ({}, "PASSIVE 30000"),                              # fastconv's default: a short spin, then sleep
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None"),     # the user's choice stands, whole
    ({"GOMP_SPINCOUNT": "5"}, "None 5"),
])
def test_idle_threads_spin_briefly_unless_the_user_chose(tmp_path, user_env, expected):
    """import fastconv sets the OpenMP wait policy only when the user set neither variable (this
    process's own import set both: they are removed for the child)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import os, fastconv\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, **user_env},
                         cwd=tmp_path, check=True).stdout.strip()
    assert out == expected


def test_every_instruction_set_gives_the_same_results(tmp_path):
    """FASTCONV_ISA caps the micro-kernels (base: SSE2/NEON): every ISA this CPU runs agrees."""
    code = (
        "import numpy as np, fastconv as fc\n"
        "r = np.random.default_rng(0)\n"
        "x = r.standard_normal((2, 13, 17, 5)).astype(np.float32)\n"
        "w = r.standard_normal((3, 3, 5, 21)).astype(np.float32)\n"
        "y = fc.conv2d(x, w, 1, 'SAME', algorithm='direct')\n"
        "z = fc.conv2d(x, w, 2, 'SAME', algorithm='im2col')\n"
        "d = fc.conv2d_backprop_filter(x, w.shape, y, 1, 'SAME')\n"
        "print(fc.simd_isa(), repr(y.sum()), repr(z.sum()), repr(d.sum()))\n"
    )
    results = {}
    for isa in ("base", "avx2", "avx512"):
        out = _run(code, tmp_path, FASTCONV_ISA=isa).split()
        results[out[0]] = np.array([float(v.replace("np.float32(", "").rstrip(")")) for v in out[1:]])
    assert "base" in results
    for isa, sums in results.items():
        np.testing.assert_allclose(sums, results["base"], rtol=1e-4, err_msg=isa)


def test_nn_namespace_has_tensorflow_names():
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 2))
    w = np.random.default_rng(1).standard_normal((3, 3, 2, 3))
    np.testing.assert_array_equal(fc.nn.conv2d(x, w, 1, "SAME"), fc.conv2d(x, w, 1, "SAME"))
    np.testing.assert_array_equal(fc.nn.max_pool2d(x, 2, 2, "VALID"), fc.max_pool2d(x, 2, 2, "VALID"))
    relu = fc.nn.relu(np.array([-1.0, np.nan, 2.0], np.float32))
    assert relu.dtype == np.float32 and relu[0] == 0 and np.isnan(relu[1]) and relu[2] == 2


def test_a_forked_child_can_run_kernels_after_the_parent_ran_threads(tmp_path):
    """GNU OpenMP's pool does not survive fork(): a multiprocessing.Pool child used to hang for
    ever in its first parallel region.  The child now runs its kernels on one thread, with the
    parent's results, and says why if asked for more threads."""
    code = (
        "import multiprocessing as mp, warnings, numpy as np, fastconv as fc\n"
        "x = np.random.default_rng(0).random((4, 40, 40, 16), dtype=np.float32)\n"
        "w = np.random.default_rng(1).random((3, 3, 16, 32), dtype=np.float32)\n"
        "fc.set_num_threads(2)\n"
        "expected = fc.conv2d(x, w, 1, 'SAME')\n"
        "def child(_):\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        fc.set_num_threads(2)\n"
        "    return (fc.get_num_threads(), bool(np.array_equal(fc.conv2d(x, w, 1, 'SAME'), expected)),\n"
        "            any('forked' in str(c.message) for c in caught))\n"
        "if __name__ == '__main__':\n"
        "    with mp.get_context('fork').Pool(2) as pool:\n"
        "        print(pool.map_async(child, range(2)).get(timeout=60))\n"
    )
    assert _run(code, tmp_path).strip() == "[(1, True, True), (1, True, True)]"

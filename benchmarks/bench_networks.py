"""Whole networks: fastconv.keras against Keras on TensorFlow and OpenVINO, with the same weights.

    python benchmarks/bench_networks.py                # ResNet50, MobileNetV2 at 224x224 (about 15 minutes)
    python benchmarks/bench_networks.py --quick        # 32x32 inputs, batch 1 and 2, 1 round: a smoke run (CI)
    python benchmarks/bench_networks.py --rounds 5 --json results/networks.json
    python benchmarks/bench_networks.py --profile --networks ResNet50 --batches 32   # time per layer kind

The Keras model (``keras.applications``, random weights, seed 0) is saved as a ``.keras`` file
and loaded by ``fastconv.keras.models.load_model``: both run the same architecture and weights.
OpenVINO (``pip install openvino``; skipped when absent) compiles the Keras model for the CPU and
runs it with one synchronous request: a benchmark peer only.

Measured, in this process, as medians of interleaved rounds (after one warm-up each: Keras traces
its graph then):

- ``predict`` images/s at batch 1 (latency) and batch 32 (``model.predict_on_batch``, one batch
  of random images; fastconv's runs through the model's frozen inference copy, see
  :mod:`fastconv.keras.inference`: BatchNormalization folded into the convolutions, plans and
  packed filters built once), at least 16 images per contender in each round;
- a check that every contender's outputs (the logits: ``classifier_activation=None``) agree with
  Keras's (largest difference relative to the largest output, at most 1e-4);
- a training step (forward, backward, Adam: ``train_on_batch``) of ResNet50 at 112x112,
  batch 16, categorical cross-entropy.

The malaria CNN's epoch is bench_training.py's.

``--profile`` times fastconv's frozen model step by step instead (no peers): per kind of step
(convolutions by size, stride, algorithm and what is fused into them; the other layers by class)
the count, the median over the rounds of the kind's total seconds, its share, and GFLOP/s against
the float32 GEMM ceiling measured in the same run.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_conv import time_rounds  # noqa: E402

AGREEMENT = 1e-4  # largest |difference| / largest |Keras output|
CALLS_PER_ROUND = 16  # images per contender and round, at least (see measure_predict)


def keras_network(keras, name, size):
    keras.utils.set_random_seed(0)
    builder = getattr(keras.applications, name)
    # Logits (no softmax): random weights give near-uniform probabilities, which would agree trivially.
    return builder(weights=None, input_shape=(size, size, 3), classifier_activation=None)


def fastconv_twin(keras_model, directory):
    """The Keras model saved as a .keras file and loaded by fastconv.keras: the same weights."""
    from fastconv.keras import models
    path = os.path.join(directory, f"{keras_model.name}.keras")
    keras_model.save(path)
    return models.load_model(path)


def openvino_model(keras_model, batch, size):
    """The Keras model compiled by OpenVINO for the CPU (None when OpenVINO is not installed)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    converted = ov.convert_model(keras_model, input=[(batch, size, size, 3)])
    compiled = ov.Core().compile_model(converted, "CPU")
    request = compiled.create_infer_request()
    return lambda x: request.infer([x])[compiled.output(0)]


def step_kind(step, x_shape):
    """(label, FLOPs) of one step of a frozen model that ran on inputs of ``x_shape``."""
    from fastconv.keras import inference
    if isinstance(step, inference._ConvStep):
        plan = next(p for (shape, _), (p, *_) in step.plans.items() if shape[0] == x_shape[0])
        kh, kw, cin, cout = plan.geometry.filter_shape
        n, oh, ow, _ = plan.geometry.output_nhwc
        label = f"conv {kh}x{kw} stride {plan.geometry.strides[0]} ({plan.algorithm})"
        return label + (" + residual add" if len(step.inputs) > 1 else ""), 2 * n * oh * ow * cout * kh * kw * cin
    if isinstance(step, inference._DenseStep):
        rows = next(shape for shape in step.plans if shape[2] % x_shape[0] == 0)[2]
        return "Dense (a 1x1 conv of its rows)", 2 * rows * step.kernel.size
    if isinstance(step, inference._LayerStep):
        return type(step.layer).__name__, 0
    return {"_PadStep": "ZeroPadding2D", "_DepthwiseStep": "DepthwiseConv2D (+ BN, ReLU6)",
            "_AffineStep": "BatchNormalization (not folded)", "_AddStep": "Add"}[type(step).__name__], 0


def profile(keras, name, size, batch, rounds, directory, ceiling):
    """Markdown table: the frozen model's time per kind of step, GFLOP/s against ``ceiling``."""
    from fastconv.keras import inference
    frozen = inference.InferenceModel(fastconv_twin(keras_network(keras, name, size), directory))
    x = np.random.default_rng(batch).standard_normal((batch, size, size, 3), dtype=np.float32)
    frozen(x)  # plans and buffers
    totals = []  # per round: {kind: seconds}
    counts, flops = {}, {}
    for _ in range(rounds):
        timings = []
        frozen.run(x, timings)
        round_totals = {}
        for step, seconds in timings:
            kind, f = step_kind(step, x.shape)
            round_totals[kind] = round_totals.get(kind, 0.0) + seconds
            if len(totals) == 0:
                counts[kind] = counts.get(kind, 0) + 1
                flops[kind] = flops.get(kind, 0) + f
        totals.append(round_totals)
    median = {k: float(np.median([t[k] for t in totals])) for k in counts}
    whole = sum(median.values())
    lines = [f"{name} {size}x{size} batch {batch}, fastconv frozen: {whole:.3f} s a call "
             f"({batch / whole:.2f} images/s), GEMM ceiling {ceiling:.0f} GFLOP/s",
             "| step | count | seconds | share | GFLOP | GFLOP/s | of the ceiling |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for k in sorted(median, key=median.get, reverse=True):
        rate = flops[k] / median[k] / 1e9 if flops[k] else None
        rates = f"{flops[k] / 1e9:.1f} | {rate:.0f} | {100 * rate / ceiling:.0f}% |" if rate else "- | - | - |"
        lines.append(f"| {k} | {counts[k]} | {median[k]:.3f} | {100 * median[k] / whole:.1f}% | {rates}")
    return "\n".join(lines)


def relative_difference(a, reference):
    return float(np.max(np.abs(np.asarray(a, np.float64) - reference)) / max(np.max(np.abs(reference)), 1e-30))


def predict_contenders(keras_model, f_model, batch, size):
    """{contender: fn(x) -> outputs} for one batch size."""
    contenders = {
        "keras": lambda x: np.asarray(keras_model.predict_on_batch(x)),
        "fastconv": f_model.predict_on_batch,   # through its frozen InferenceModel
    }
    ov_fn = openvino_model(keras_model, batch, size)
    if ov_fn is not None:
        contenders["openvino"] = ov_fn
    return contenders


def measure_predict(keras, name, size, batches, rounds, directory):
    """[{network, batch, contender: images/s, 'agreement': {contender: relative difference}}]."""
    keras_model = keras_network(keras, name, size)
    f_model = fastconv_twin(keras_model, directory)
    rows = []
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, size, size, 3), dtype=np.float32)
        contenders = predict_contenders(keras_model, f_model, batch, size)
        reference = np.asarray(contenders["keras"](x), np.float64)
        agreement = {c: relative_difference(fn(x), reference) for c, fn in contenders.items() if c != "keras"}
        # A round calls each contender CALLS_PER_ROUND // batch times (at least once): a call at
        # batch 1 takes 20-100 ms, where one call per round was at the mercy of a moment's load.
        calls = max(1, CALLS_PER_ROUND // batch)
        repeated = {c: (lambda fn=fn, x=x, n=calls: [fn(x) for _ in range(n)]) for c, fn in contenders.items()}
        seconds = time_rounds(repeated, rounds)
        row = {"network": name, "size": size, "batch": batch, "agreement": agreement,
               "images_per_s": {c: batch * calls / t for c, t in seconds.items()},
               "conv_gflop": conv_flops(f_model._frozen_inference(), x) / 1e9}
        rows.append(row)
        print(format_predict_row(row), flush=True)
    return rows


def conv_flops(frozen, x):
    """2 N OH OW kh kw cin cout summed over the Conv2D layers that ``frozen`` planned for ``x``."""
    total = 0
    for step in frozen._steps_for(x.shape)[1]:
        for plan, *_ in getattr(step, "plans", {}).values():
            n, oh, ow, cout = plan.geometry.output_nhwc
            kh, kw, cin, _ = plan.geometry.filter_shape
            total += 2 * n * oh * ow * cout * kh * kw * cin
    return total


def measure_training_step(keras, size, batch, rounds, directory):
    """Seconds per ``train_on_batch`` (forward, backward, Adam) of ResNet50, Keras and fastconv."""
    import fastconv.keras as fk
    keras_model = keras_network(keras, "ResNet50", size)
    f_model = fastconv_twin(keras_model, directory)
    keras_model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    f_model.compile(optimizer=fk.optimizers.Adam(), loss=fk.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, 3), dtype=np.float32)
    y = np.eye(1000, dtype=np.float32)[rng.integers(0, 1000, batch)]
    seconds = time_rounds({"keras": lambda: keras_model.train_on_batch(x, y),
                           "fastconv": lambda: f_model.train_on_batch(x, y)}, rounds)
    row = {"network": "ResNet50", "size": size, "batch": batch, "seconds": seconds}
    print(f"ResNet50 training step {size}x{size} batch {batch}: keras {seconds['keras']:.3f} s, "
          f"fastconv {seconds['fastconv']:.3f} s ({seconds['fastconv'] / seconds['keras']:.2f}x Keras's time)",
          flush=True)
    return row


def format_predict_row(row):
    ips = row["images_per_s"]
    cells = ", ".join(f"{c} {v:.2f}" for c, v in ips.items())
    agree = ", ".join(f"{c} {d:.1e}" for c, d in row["agreement"].items())
    return f"{row['network']} {row['size']}x{row['size']} batch {row['batch']}: images/s {cells} (agreement: {agree})"


def markdown(results):
    """The report's table (one line per network and batch) and the training step."""
    predict_rows, training_row = results["predict"], results["training"]
    names = sorted({c for r in predict_rows for c in r["images_per_s"]}, key=["keras", "openvino", "fastconv"].index)
    lines = ["| network | batch | " + " | ".join(f"{c} images/s" for c in names)
             + " | fastconv / Keras | fastconv / OpenVINO | fastconv conv GFLOP/s | outputs agree |",
             "|---|---:|" + "---:|" * len(names) + "---:|---:|---:|---|"]
    for r in predict_rows:
        ips = r["images_per_s"]
        best = ips["fastconv"]
        vs_ov = f"{best / ips['openvino']:.2f}x" if "openvino" in ips else "-"
        agree = "yes" if all(d <= AGREEMENT for d in r["agreement"].values()) else "NO"
        lines.append(f"| {r['network']} {r['size']}x{r['size']} | {r['batch']} | "
                     + " | ".join(f"{ips[c]:.2f}" if c in ips else "-" for c in names)
                     + f" | {best / ips['keras']:.2f}x | {vs_ov} | {r['conv_gflop'] / r['batch'] * best:.1f} | {agree} "
                     f"(max rel. diff {max(r['agreement'].values()):.1e}) |")
    lines += ["", f"Float32 GEMM ceiling in the same run: {results['gemm_gflops']:.0f} GFLOP/s (NumPy matmul); "
              f"conv GFLOP/s counts the Conv2D layers' 2 N OH OW kh kw cin cout at fastconv's rate; "
              f"load average at the end {results['load_average']:.1f} on {os.cpu_count()} CPUs."]
    if training_row is not None:
        s = training_row["seconds"]
        size = training_row["size"]
        lines += ["", f"ResNet50 training step (forward, backward, Adam), {size}x{size}, "
                  f"batch {training_row['batch']}: Keras {s['keras']:.3f} s, fastconv {s['fastconv']:.3f} s "
                  f"({s['fastconv'] / s['keras']:.2f}x Keras's time)."]
    return "\n".join(lines)


def run(quick=False, rounds=3, networks=("ResNet50", "MobileNetV2"), training=True, batches=None, profiling=False):
    import keras
    import tensorflow as tf

    import fastconv
    from report import gemm_ceiling
    rounds = 1 if quick else rounds
    ceiling = gemm_ceiling(rounds, 1024 if quick else 4096)
    print(f"fastconv {fastconv.__version__} ({fastconv.get_num_threads()} threads, {fastconv.simd_isa()}), "
          f"TensorFlow {tf.__version__} / Keras {keras.__version__}; float32 GEMM ceiling (NumPy matmul) "
          f"{ceiling:.0f} GFLOP/s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    size, default_batches = (32, (1, 2)) if quick else (224, (1, 32))
    batches = batches or default_batches
    predict_rows, training_row = [], None
    if profiling:
        with tempfile.TemporaryDirectory() as directory:
            return {"profiles": [profile(keras, name, size, batch, rounds, directory, ceiling)
                                 for name in networks for batch in batches]}
    with tempfile.TemporaryDirectory() as directory:
        for name in networks:
            predict_rows += measure_predict(keras, name, size, batches, rounds, directory)
        if training:
            training_row = measure_training_step(keras, 32 if quick else 112, 2 if quick else 16, rounds, directory)
    return {"predict": predict_rows, "training": training_row, "gemm_gflops": ceiling,
            "load_average": os.getloadavg()[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="32x32 inputs, batches 1 and 2, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--networks", nargs="+", default=["ResNet50", "MobileNetV2"])
    parser.add_argument("--no-training", action="store_true", help="skip the ResNet50 training step")
    parser.add_argument("--batches", nargs="+", type=int, help="predict batch sizes (default 1 and 32)")
    parser.add_argument("--profile", action="store_true", help="time fastconv's frozen model per kind of step")
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args(argv)
    results = run(args.quick, args.rounds, tuple(args.networks), not args.no_training, args.batches, args.profile)
    print()
    if args.profile:
        print("\n\n".join(results["profiles"]))
        return 0
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    disagreeing = [r for r in results["predict"] if any(d > AGREEMENT for d in r["agreement"].values())]
    return 1 if disagreeing else 0


if __name__ == "__main__":
    sys.exit(main())

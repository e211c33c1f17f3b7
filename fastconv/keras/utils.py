"""Utilities, as ``keras.utils``: set_random_seed, to_categorical, plot_model, Sequence /
PyDataset (batches delivered by an object), Progbar, get_file (fastconv.keras.file_utils),
image_dataset_from_directory (fastconv.keras.image_dataset)."""
import math
import os
import random
import sys
import time

import numpy as np

from fastconv.keras import backend


def set_random_seed(seed):
    """Seed Python's, NumPy's and fastconv.keras's generators: initial weights, dropout masks and
    the shuffling of ``fit`` then repeat from run to run."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r} (of type {type(seed)})")
    random.seed(int(seed))
    np.random.seed(int(seed))
    backend.seed_generator(int(seed))


def to_categorical(x, num_classes=None):
    """Integer class labels -> one-hot rows (float64, as Keras): ``to_categorical([1, 0], 3)``
    is ``[[0, 1, 0], [1, 0, 0]]``.  A trailing axis of 1 ((n, 1) labels) is replaced."""
    labels = np.asarray(x)
    if labels.dtype.kind == "f" and not np.all(labels == np.floor(labels)):
        raise ValueError("to_categorical: the labels must be integers (class indices)")
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must lie in [0, num_classes={num_classes}); received values from "
                         f"{flat.min()} to {flat.max()}")
    one_hot = np.zeros((flat.size, num_classes))
    one_hot[np.arange(flat.size), flat] = 1
    return one_hot.reshape(shape + (num_classes,))


class PyDataset:
    """Base class of datasets that deliver batches (Keras's ``PyDataset``, formerly ``Sequence``).

    Define ``__len__`` (batches per epoch) and ``__getitem__(index)`` returning ``(x_batch,
    y_batch)``; ``on_epoch_end`` is called after every epoch (e.g. to reshuffle).  ``fit`` takes such
    an object in place of ``x`` and ``y``; any object with ``__len__`` and ``__getitem__`` works
    the same (e.g. ``ImageDataGenerator().flow(x, y)``).  Batches are produced in the calling
    thread: ``workers`` and ``use_multiprocessing`` are accepted for compatibility only.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers, self.use_multiprocessing, self.max_queue_size = workers, use_multiprocessing, max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def on_epoch_end(self):
        pass


Sequence = PyDataset


class Progbar:
    """Keras's progress line: ``18/18 ━━━━━━━━━━━━━━━━━━━━ 3s 150ms/step - accuracy: 0.71 - loss: 0.55``.

    verbose=1 redraws the line in place on a terminal or in Jupyter (and prints it once, when
    complete, elsewhere); verbose=2 prints one line when complete; 0 prints nothing.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, unit_name="step"):
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.seen = 0
        self._start = time.time()
        self._after_first = None
        self._last_draw = 0.0
        self._drawn_width = 0
        self._dynamic = (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()) or "ipykernel" in sys.modules

    def update(self, current, values=None, finalize=None):
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        self.seen = current
        now = time.time()
        if current == 1 and self._after_first is None:
            self._after_first = now
        if self.verbose == 1 and (finalize or (self._dynamic and now - self._last_draw >= self.interval)):
            self._draw(current, values, finalize, now)
        elif self.verbose == 2 and finalize:
            sys.stdout.write(self._line(current, values, finalize, now, compact=True) + "\n")
            sys.stdout.flush()

    def _style(self, text, code):
        return f"\x1b[{code}m{text}\x1b[0m" if self._dynamic else text

    def _step_time(self, current, now):
        if not current:
            return 0.0
        if self._after_first is not None and current > 1:
            return (now - self._after_first) / (current - 1)
        return (now - self._start) / current

    def _line(self, current, values, finalize, now, compact=False):
        per_step = self._step_time(current, now)
        if per_step >= 1 or per_step == 0:
            speed = f"{per_step:.0f}s/{self.unit_name}"
        elif per_step >= 1e-3:
            speed = f"{per_step * 1e3:.0f}ms/{self.unit_name}"
        else:
            speed = f"{per_step * 1e6:.0f}us/{self.unit_name}"
        if self.target:
            count = f"{current:{int(math.log10(self.target)) + 1}d}/{self.target}"
        else:
            count = f"{current:7d}/Unknown"
        metrics = "".join(f" - {k}: {_format_value(v)}" for k, v in _pairs(values))
        if compact:
            return f"{count} - {now - self._start:.0f}s - {speed}{metrics}"
        bar = ""
        if self.target:
            done = int(self.width * min(current / self.target, 1))
            bar = " " + (self._style("━" * done, 32) if done else "") + self._style("━" * (self.width - done), 37)
        if finalize or not self.target:
            clock = f"{now - self._start:.0f}s"
        else:
            eta = per_step * (self.target - current)
            clock = (f"{eta // 3600:.0f}:{(eta % 3600) // 60:02.0f}:{eta % 60:02.0f}" if eta > 3600 else
                     f"{eta // 60:.0f}:{eta % 60:02.0f}" if eta > 60 else f"{eta:.0f}s")
        return f"{self._style(count, 1)}{bar} {self._style(clock, 1)} {speed}{metrics}"

    def _draw(self, current, values, finalize, now):
        line = self._line(current, values, finalize, now)
        visible = _visible_len(line)
        pad = " " * max(self._drawn_width - visible, 0)
        sys.stdout.write(("\r" if self._dynamic else "") + line + pad + ("\n" if finalize else ""))
        sys.stdout.flush()
        self._drawn_width = 0 if finalize else visible
        self._last_draw = now


def _pairs(values):
    if values is None:
        return []
    return list(values.items()) if isinstance(values, dict) else list(values)


def _format_value(v):
    v = float(v)
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def _visible_len(text):
    out, i = 0, 0
    while i < len(text):
        if text[i] == "\x1b":
            i = text.index("m", i) + 1
        else:
            out += 1
            i += 1
    return out


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               **kwargs):
    """Draw the model's graph of layers into ``to_file`` (png, pdf, svg... by its extension) with
    matplotlib (no graphviz needed): one box per layer call, arrows from inputs to outputs, top
    to bottom (``rankdir='TB'``) or left to right ('LR').  In IPython, returns the image to show."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyBboxPatch
    except ImportError:
        raise ImportError("plot_model draws with matplotlib: pip install matplotlib") from None
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"plot_model: rankdir must be 'TB' or 'LR'. Received: rankdir={rankdir!r}")
    if kwargs:
        raise TypeError(f"plot_model: unrecognized keyword arguments {sorted(kwargs)}")
    nodes = model._plot_nodes()
    if not nodes:
        raise ValueError(f'plot_model: model "{model.name}" has no layers or is not built yet (give it an input shape)')
    index = {id(n): i for i, n in enumerate(nodes)}
    # Depth of a node: the longest path from an input, so that every arrow points down (or right).
    depth = []
    for node in nodes:
        parents = [index[id(p)] for p in node.parent_nodes if id(p) in index]
        depth.append(1 + max((depth[p] for p in parents), default=-1))
    labels = [_node_label(node, show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable)
              for node in nodes]
    levels = {}
    for i, d in enumerate(depth):
        levels.setdefault(d, []).append(i)
    char_w, line_h = 0.085, 0.22  # inches per character and per text line (monospace, 9 pt)
    box_w = max(len(line) for label in labels for line in label.split("\n")) * char_w + 0.4
    box_h = max(label.count("\n") + 1 for label in labels) * line_h + 0.3
    gap_along, gap_across = 0.5, 0.4
    n_levels, widest = len(levels), max(len(v) for v in levels.values())
    if rankdir == "TB":
        # Room on the right for the shortcuts that go round the boxes.
        gap_across += 0.6
        fig_w, fig_h = widest * (box_w + gap_across) + gap_across, n_levels * (box_h + gap_along) + gap_along
    else:
        fig_w, fig_h = n_levels * (box_w + gap_along) + gap_along, widest * (box_h + gap_across) + gap_across
    centers = {}
    for d, members in levels.items():
        for k, i in enumerate(members):
            offset = (k - (len(members) - 1) / 2)
            if rankdir == "TB":
                centers[i] = (fig_w / 2 + offset * (box_w + gap_across),
                              fig_h - gap_along - box_h / 2 - d * (box_h + gap_along))
            else:
                centers[i] = (gap_along + box_w / 2 + d * (box_w + gap_along),
                              fig_h / 2 - offset * (box_h + gap_across))
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, fig_w)
    ax.set_ylim(0, fig_h)
    ax.axis("off")
    for i, node in enumerate(nodes):
        x, y = centers[i]
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor="#eef3fb", edgecolor="#3a5a8c", linewidth=1))
        ax.text(x, y, labels[i], ha="center", va="center", family="monospace", fontsize=9)
        for parent in node.parent_nodes:
            if id(parent) not in index:
                continue
            px, py = centers[index[id(parent)]]
            style = "arc3"
            if depth[i] - depth[index[id(parent)]] > 1:
                # A connection that skips levels (a residual shortcut) goes round the boxes between.
                # arc3 bulges by about rad x the chord: a fixed 0.35 inch, whatever the distance.
                style = f"arc3,rad={-min(0.5, 0.35 / max(abs(x - px), abs(y - py))):.3f}"
                start, end = ((px + box_w / 2, py), (x + box_w / 2, y)) if rankdir == "TB" else \
                    ((px, py + box_h / 2), (x, y + box_h / 2))
            elif rankdir == "TB":
                start, end = (px, py - box_h / 2), (x, y + box_h / 2)
            else:
                start, end = (px + box_w / 2, py), (x - box_w / 2, y)
            ax.annotate("", xy=end, xytext=start,
                        arrowprops=dict(arrowstyle="-|>", color="#3a5a8c", lw=1, connectionstyle=style))
    fig.savefig(to_file, dpi=dpi)
    if "IPython" in sys.modules:
        from IPython import get_ipython
        if get_ipython() is not None and not os.fspath(to_file).endswith(".pdf"):
            from IPython.display import Image
            return Image(filename=os.fspath(to_file))
    return None


def _node_label(node, show_shapes, show_dtype, show_layer_names, show_activations, show_trainable):
    layer = node.layer
    lines = [f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__]
    if show_shapes:
        shapes_in = [t.shape for t in node.inputs]
        shape_in = "-" if not shapes_in else str(shapes_in[0]) if len(shapes_in) == 1 else str(shapes_in)
        shapes_out = [t.shape for t in node.outputs]
        shape_out = str(shapes_out[0]) if len(shapes_out) == 1 else str(shapes_out)
        lines += [f"Input shape: {shape_in}", f"Output shape: {shape_out}"]
    if show_dtype:
        lines.append(f"dtype: {layer.dtype}")
    if show_activations and hasattr(layer, "activation"):
        lines.append(f"Activation: {layer.activation.__name__}")
    if show_trainable:
        lines.append(f"Trainable: {layer.trainable}")
    return "\n".join(lines)


from fastconv.keras.file_utils import get_file  # noqa: E402,F401  (file_utils imports Progbar from here)
from fastconv.keras.image_dataset import image_dataset_from_directory  # noqa: E402,F401
# keras.utils.load_img, img_to_array and array_to_img (Keras 3's names for the image helpers of
# keras.preprocessing.image), as the Keras example "Image classification from scratch" calls them.
from fastconv.preprocessing.image import array_to_img, img_to_array, load_img  # noqa: E402,F401

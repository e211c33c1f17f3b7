"""Figures of the lecture: image channels and their histograms, filters, feature maps, training
curves and confusion matrices.

Every function returns a ``matplotlib.figure.Figure`` and, given ``path``, also saves it there
(the format from the file extension).  The figures are built without pyplot: no GUI backend, no
global list of open figures to close, so they work the same in a headless job, a test or a
thread, and a notebook displays a returned figure as it displays any other.

matplotlib is an optional dependency (the ``examples`` extra), imported when a figure is made.
"""
import numpy as np

_CHANNEL_COLOURS = ("Reds", "Greens", "Blues")


def _figure(nrows, ncols, panel_size=(2.2, 2.2), squeeze=False):
    """A pyplot-free Figure with an nrows x ncols grid of axes (a 2-D array of them)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("fastconv.plot needs matplotlib: `pip install matplotlib` or "
                          "`pip install \"fastconv[examples]\"`") from None
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def _finish(fig, path, dpi=100):
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def _grid(count, ncols):
    ncols = max(1, min(ncols, count))
    return -(-count // ncols), ncols


def _drop_unused(axes, used):
    for ax in axes.ravel()[used:]:
        ax.remove()


def _as_image(image, fn):
    img = np.asarray(image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.dtype.kind not in "biuf":
        raise ValueError(f"{fn}: image must be numeric (H, W), (H, W, C) or (1, H, W, C); received shape "
                         f"{np.shape(image)} and dtype {img.dtype}")
    return img


def _display(img):
    """An image ready for imshow: uint8 as is, floats clipped to [0, 1] (or scaled when they
    exceed it), one channel squeezed."""
    if img.dtype.kind == "f" or img.dtype.kind == "b":
        img = img.astype(np.float64)
        lo, hi = np.nanmin(img), np.nanmax(img)
        if lo < 0 or hi > 1:
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img[..., 0] if img.shape[-1] == 1 else img


def image_channels(image, path=None, channel_names=("R", "G", "B")):
    """The image and each of its channels as a separate panel: 1 + C axes.

    The channels are drawn with the colour map of their colour (red, green, blue for RGB) and a
    common scale, so that the panels compare.
    """
    img = _as_image(image, "image_channels")
    c = img.shape[-1]
    fig, axes = _figure(1, c + 1)
    axes = axes[0]
    axes[0].imshow(_display(img), cmap="gray" if c == 1 else None)
    axes[0].set_title("image")
    vmin, vmax = float(np.min(img)), float(np.max(img))
    for k in range(c):
        cmap = _CHANNEL_COLOURS[k] if c == 3 else "gray"
        name = channel_names[k] if c == 3 and k < len(channel_names) else f"channel {k}"
        axes[k + 1].imshow(img[..., k], cmap=cmap, vmin=vmin, vmax=vmax)
        axes[k + 1].set_title(name)
    for ax in axes:
        ax.set_axis_off()
    return _finish(fig, path)


def channel_histograms(image, path=None, bins=32, channel_names=("R", "G", "B")):
    """A histogram of the values of each channel: C axes, on one value range."""
    img = _as_image(image, "channel_histograms")
    c = img.shape[-1]
    fig, axes = _figure(1, c, panel_size=(3.0, 2.4))
    axes = axes[0]
    lo, hi = float(np.min(img)), float(np.max(img))
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    colours = ("tab:red", "tab:green", "tab:blue")
    for k in range(c):
        name = channel_names[k] if c == 3 and k < len(channel_names) else f"channel {k}"
        axes[k].hist(img[..., k].ravel(), bins=edges, color=colours[k] if c == 3 else "gray")
        axes[k].set_title(name)
        axes[k].set_xlabel("value")
    axes[0].set_ylabel("pixels")
    return _finish(fig, path)


def image_grid(images, path=None, titles=None, ncols=8):
    """A grid of images: an array (N, H, W[, C]), e.g. augmented copies of one image or sample
    cells, or a list of (H, W[, C]) images of any sizes (a filter beside its input and output): N axes."""
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(f"image_grid: images must be (N, H, W) or (N, H, W, C); received shape {images.shape}")
        images = list(images)
    imgs = [_as_image(img, "image_grid") for img in images]
    if titles is not None and len(titles) != len(imgs):
        raise ValueError(f"image_grid: {len(titles)} titles for {len(imgs)} images")
    rows, cols = _grid(len(imgs), ncols)
    fig, axes = _figure(rows, cols, panel_size=(1.8, 1.8))
    for k, ax in enumerate(axes.ravel()[:len(imgs)]):
        img = imgs[k]
        ax.imshow(_display(img), cmap="gray" if img.shape[-1] == 1 else None)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
    _drop_unused(axes, len(imgs))
    return _finish(fig, path)


def filters(weights, path=None, channel=None, max_filters=64, annotate=None):
    """The filters ``W[:, :, c, k]`` of a convolution (HWIO weights) as a grid of small images.

    One row per input channel ``c`` (or only ``channel``), one column per filter ``k`` (the first
    ``max_filters``); a diverging colour map centred on 0 on one scale for all panels, so that
    positive and negative weights and their sizes compare.  ``annotate`` writes each weight in
    its cell (default: for filters of at most 5x5 in at most 16 panels, e.g. the lecture's 3x3
    vertical-line filter).  Returns a figure with one axes per panel.
    """
    w = np.asarray(weights)
    if w.ndim == 2:
        w = w[:, :, None, None]
    if w.ndim != 4 or w.dtype.kind not in "biuf":
        raise ValueError(f"filters: weights must be numeric (kh, kw, in, out) (or one (kh, kw) filter); "
                         f"received shape {np.shape(weights)}")
    channels = range(w.shape[2]) if channel is None else [channel]
    if channel is not None and not 0 <= channel < w.shape[2]:
        raise ValueError(f"filters: channel {channel} does not exist; the weights have {w.shape[2]} input channels")
    count = min(w.shape[3], max_filters)
    panels = len(channels) * count
    if annotate is None:
        annotate = w.shape[0] * w.shape[1] <= 25 and panels <= 16
    fig, axes = _figure(len(channels), count, panel_size=(1.2, 1.2))
    vmax = float(np.max(np.abs(w))) or 1.0
    for r, c in enumerate(channels):
        for k in range(count):
            ax = axes[r, k]
            kernel = w[:, :, c, k]
            ax.imshow(kernel, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if annotate:
                for (i, j), value in np.ndenumerate(kernel):
                    ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=8)
            if r == 0:
                ax.set_title(f"filter {k}", fontsize=8)
            if k == 0:
                ax.set_ylabel(f"channel {c}", fontsize=8)
    return _finish(fig, path)


def feature_maps(maps, path=None, ncols=8, max_maps=64, image_index=0, cmap="viridis"):
    """The feature maps of one image as a grid: one axes per channel (the first ``max_maps``).

    ``maps``: a layer's output (N, H, W, C), of which image ``image_index`` is drawn, or (H, W, C).
    Each map has its own colour scale (what matters is where a filter responds).
    """
    m = np.asarray(maps)
    if m.ndim == 4:
        if not 0 <= image_index < m.shape[0]:
            raise ValueError(f"feature_maps: image_index {image_index} is outside the batch of {m.shape[0]}")
        m = m[image_index]
    if m.ndim != 3 or m.dtype.kind not in "biuf":
        raise ValueError(f"feature_maps: maps must be numeric (N, H, W, C) or (H, W, C); "
                         f"received shape {np.shape(maps)}")
    count = min(m.shape[-1], max_maps)
    rows, cols = _grid(count, ncols)
    fig, axes = _figure(rows, cols, panel_size=(1.5, 1.5))
    for k, ax in enumerate(axes.ravel()[:count]):
        ax.imshow(m[..., k], cmap=cmap)
        ax.set_title(str(k), fontsize=8)
        ax.set_axis_off()
    _drop_unused(axes, count)
    return _finish(fig, path)


def history(history, path=None, metrics=None):
    """Training curves per epoch: one axes per metric, the training curve and its ``val_`` twin.

    ``history``: a Keras-style History (its ``.history`` dict) or the dict itself, e.g.
    ``{"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}``.
    ``metrics``: the names to draw (default: every name without the ``val_`` prefix, or a
    ``val_`` name that has no training twin).
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError("history: give a History or a non-empty dict of per-epoch lists; "
                         f"received {type(history).__name__}")
    if metrics is None:
        metrics = [k for k in logs if not k.startswith("val_") or k[4:] not in logs]
    missing = [m for m in metrics if m not in logs and "val_" + m not in logs]
    if missing:
        raise ValueError(f"history: no values for {missing}; the history holds {sorted(logs)}")
    fig, axes = _figure(1, len(metrics), panel_size=(3.6, 2.8))
    for ax, name in zip(axes[0], metrics):
        for key, label, style in ((name, "training", "-o"), ("val_" + name, "validation", "-s")):
            if key in logs:
                values = np.asarray(logs[key], dtype=float)
                ax.plot(np.arange(1, len(values) + 1), values, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return _finish(fig, path)


def confusion_counts(y_true, y_pred, num_classes=None):
    """The confusion matrix: ``counts[i, j]`` = samples of true class i predicted as class j.

    Labels are integers 0 .. num_classes - 1 (an (N, 1) column is accepted); probabilities are
    refused: threshold (``p > 0.5``) or take the argmax first.
    """
    t, p = (np.asarray(a) for a in (y_true, y_pred))
    t = t.reshape(-1) if t.ndim == 2 and t.shape[1] == 1 else t
    p = p.reshape(-1) if p.ndim == 2 and p.shape[1] == 1 else p
    if t.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"confusion_matrix: y_true and y_pred must be label vectors of one length; "
                         f"received shapes {np.shape(y_true)} and {np.shape(y_pred)}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.dtype.kind not in "biuf" or not np.all(a == np.round(a)) or (a.size and a.min() < 0):
            raise ValueError(f"confusion_matrix: {name} must hold class numbers 0, 1, ...; threshold "
                             f"probabilities (p > 0.5) or take their argmax first")
    t, p = t.astype(np.int64), p.astype(np.int64)
    k = num_classes if num_classes is not None else int(max(t.max(initial=0), p.max(initial=0))) + 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (t, p), 1)
    return counts


def confusion_matrix(y_true, y_pred, path=None, class_names=None, normalize=False):
    """A confusion matrix with the count (and the share of its true class) in every cell.

    Rows are true classes, columns predictions, as in scikit-learn.  ``class_names`` label
    them (e.g. ``("parasitized", "uninfected")``); ``normalize`` colours by the share of each
    row instead of the count.  The counts are :func:`confusion_counts`.
    """
    num_classes = len(class_names) if class_names is not None else None
    counts = confusion_counts(y_true, y_pred, num_classes)
    k = counts.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    fig, axes = _figure(1, 1, panel_size=(1.4 * k + 2.0, 1.2 * k + 1.6))
    ax = axes[0, 0]
    shown = share if normalize else counts
    ax.imshow(shown, cmap="Blues", vmin=0)
    threshold = shown.max() / 2 if shown.size else 0
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, f"{n}\n({share[i, j]:.1%})", ha="center", va="center",
                color="white" if shown[i, j] > threshold else "black")
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / counts.sum() if counts.sum() else float("nan")
    ax.set_title(f"accuracy {accuracy:.1%} of {counts.sum()}")
    return _finish(fig, path)

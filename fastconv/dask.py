"""fastconv on Dask: convolutions and pooling of images larger than memory, models on them, and
predictions over a cluster.

An optional extra (``pip install ".[dask]"``): ``import fastconv`` needs NumPy alone, this module
needs ``dask.array`` (and ``dask.distributed`` for a cluster).

- :func:`conv2d`, :func:`max_pool2d`, :func:`avg_pool2d` take a ``dask.array.Array`` in NHWC,
  chunked along any of N, H and W (not C), and return a lazy ``dask.array.Array`` equal to the
  in-memory fastconv op.  They follow dask-image's convention: ``map_overlap`` with a halo
  (``depth``) and ``boundary='none'``, the image border padded once, as the in-memory op pads it.
- :func:`apply` runs a fully convolutional ``fastconv.keras`` model on a chunked image, layer by
  layer on those ops.
- :func:`predict` runs ``model.predict`` over a dask array of images chunked along N, on the
  active ``dask.distributed.Client`` if there is one.

How a strided window meets chunks.  Output row ``o`` of a window of effective size
``eff = (k - 1) * dilation + 1`` moved by ``stride`` reads the padded rows
``[o * stride, o * stride + eff)``.  The image is padded as the op pads it (zeros for the
convolution and the average, -inf for the maximum, where padding never wins) and cut to the
``(out - 1) * stride + eff`` rows the outputs read; it is then chunked on the stride grid: every
chunk but the last starts and ends on a multiple of ``stride``, so that a chunk of ``c * stride``
rows gives ``c`` output rows once it borrows ``eff - stride`` rows from the next chunk (the halo:
after the chunk only, none before).  The last chunk holds the rest, ``(c - 1) * stride + eff``
rows, and needs no halo.  The output chunks follow the input's (an input chunk boundary becomes
the first output row whose window starts at or after it); chunks with fewer output rows than the
halo needs (``ceil((eff - stride) / stride)``, for example single-pixel chunks under a 5x5
filter) are merged into their neighbour, since a halo cannot reach past the next chunk.
"""
import functools
import threading

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # the optional extra is not installed
    raise ImportError('fastconv.dask needs dask: pip install "fastconv[dask]" (or "dask[array,distributed]")') from exc

import fastconv
from fastconv.conv import ConvGeometry
from fastconv.pooling import _PoolGeometry
from fastconv._validation import as_numeric_array, float_dtypes, window_geometry

__all__ = ["apply", "avg_pool2d", "conv2d", "max_pool2d", "predict"]


# ----------------------------------------------------------------------------------- the ops


def _check_image(fn, x):
    if not isinstance(x, da.Array):
        raise TypeError(f"{fn}: input must be a dask.array.Array (use fastconv.{fn} for in-memory arrays, or "
                        f"dask.array.from_array(x, chunks=...) to chunk one). Received: input of type "
                        f"{type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{fn}: input must be 4-D (NHWC); received shape {x.shape}")
    if len(x.chunks[3]) > 1:
        raise ValueError(f"{fn}: the channel axis must be one chunk (the window sums over all channels); received "
                         f"chunks {x.chunks[3]} along C of input shape {x.shape}. Rechunk with x.rechunk({{3: -1}}).")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: input must hold numbers (bool, integer or floating point); received dtype {x.dtype}")


def _axis_plan(image_chunks, pad_before, out, stride, eff):
    """(output chunks, padded input chunks, halo after each chunk) along one spatial axis.

    See the module docstring: input chunks on the stride grid, ``c * stride`` rows each but the
    last, which holds the ``(c - 1) * stride + eff`` rows that remain; the halo ``eff - stride``.
    """
    halo = max(eff - stride, 0)
    smallest = max(1, -(-halo // stride))  # output rows per chunk so that the halo fits in the next chunk
    starts = [0]
    for boundary in np.cumsum(image_chunks)[:-1]:
        first = -(-(int(boundary) + pad_before) // stride)  # first output whose window starts at or after it
        if first - starts[-1] >= smallest and first < out:
            starts.append(first)
    out_chunks = tuple(np.diff(starts + [out]).tolist())
    padded_length = (out - 1) * stride + eff
    in_chunks = tuple(c * stride for c in out_chunks[:-1]) + (padded_length - starts[-1] * stride,)
    return out_chunks, in_chunks, halo


def _padded_on_grid(x, pads, out_hw, strides, effs, fill):
    """``x`` padded with ``fill`` as the op pads it, cut to the rows and columns the outputs read,
    chunked on the stride grid; with the output chunks and the halos of H and W."""
    widths, index, chunks, out_chunks, halos = [(0, 0)], [slice(None)], [x.chunks[0]], [], []
    for axis in (1, 2):
        size, before = x.shape[axis], pads[axis - 1][0]
        out, stride, eff = out_hw[axis - 1], strides[axis - 1], effs[axis - 1]
        needed = (out - 1) * stride + eff   # padded rows the outputs read
        lead = min(before, needed)
        kept = min(size, max(needed - before, 0))
        widths.append((lead, needed - lead - kept))
        index.append(slice(0, kept))
        o_chunks, i_chunks, halo = _axis_plan(x.chunks[axis], before, out, stride, eff)
        chunks.append(i_chunks)
        out_chunks.append(o_chunks)
        halos.append(halo)
    widths.append((0, 0))
    index.append(slice(None))
    x = x[tuple(index)]
    if any(w != (0, 0) for w in widths):
        x = da.pad(x, widths, mode="constant", constant_values=fill)
    return x.rechunk(tuple(chunks) + (-1,)), out_chunks, halos


def _windowed(x, fill, pads, out_hw, strides, effs, channels, dtype, block_fn):
    """Run ``block_fn`` (a VALID window op) on every chunk of the padded, gridded ``x`` with its halo."""
    xp, out_chunks, (halo_h, halo_w) = _padded_on_grid(x, pads, out_hw, strides, effs, fill)
    return xp.map_overlap(block_fn, depth={0: 0, 1: (0, halo_h), 2: (0, halo_w), 3: 0}, boundary="none",
                          trim=False, chunks=(xp.chunks[0], *out_chunks, (channels,)), dtype=dtype,
                          meta=np.empty((0, 0, 0, 0), dtype=dtype))


def _conv_chunk(chunk, filters, strides, dilations, bias, activation):
    # A function of the module, not a closure: the graph's tasks must pickle (dask.distributed).
    return fastconv.conv2d(chunk, filters, strides, "VALID", dilations=dilations, bias=bias, activation=activation)


def _pairs(pads):
    pt, pb, pl, pr = pads
    return ((pt, pb), (pl, pr))


def conv2d(input, filters, strides, padding, dilations=None, *, bias=None, activation=None):
    """2-D convolution of a chunked NHWC image, lazily: equals ``fastconv.conv2d`` (within the
    rounding of the summation order, relative 1e-5 in float32) for every argument form.

    ``input`` is a ``dask.array.Array`` ``[batch, height, width, channels]`` chunked along any of
    N, H and W (the channel axis must be one chunk); ``filters`` an in-memory array
    ``[kh, kw, in, out]``; ``strides``, ``padding`` ('SAME', 'VALID' or explicit pairs),
    ``dilations``, ``bias`` and ``activation`` (None or 'relu') as in :func:`fastconv.conv2d`.

    The image is padded with zeros as the in-memory op pads it and rechunked onto the stride
    grid (see the module docstring): each chunk borrows ``(kh - 1) * dilation + 1 - stride``
    rows (and columns) from the next one, and chunks too small for that halo are merged with
    their neighbour, so the output's chunks along H and W may be fewer than the input's.
    Returns a lazy ``dask.array.Array`` of the output.
    """
    fn = "fastconv.dask.conv2d"
    _check_image(fn, input)
    w = as_numeric_array(filters, fn, "filters")
    geo = ConvGeometry(fn, input.shape, w.shape, strides, padding, "NHWC", dilations)
    if activation not in (None, "relu"):
        raise ValueError(f"{fn}: activation must be None or 'relu'. Received: activation={activation!r}")
    operands = (np.empty(0, input.dtype), w)
    if bias is not None:
        b = as_numeric_array(bias, fn, "bias")
        if b.shape != (geo.filter_shape[3],):
            raise ValueError(f"{fn}: bias must have shape ({geo.filter_shape[3]},) (one value per output "
                             f"channel of filters {geo.filter_shape}); received shape {b.shape}")
        operands += (b,)
    compute, result_dtype = float_dtypes(fn, *operands)
    wc = np.ascontiguousarray(w, dtype=compute)
    bc = None if bias is None else np.ascontiguousarray(b, dtype=compute)
    kh, kw, _, cout = geo.filter_shape
    effs = tuple((k - 1) * d + 1 for k, d in zip((kh, kw), geo.dilations))

    block = functools.partial(_conv_chunk, filters=wc, strides=geo.strides, dilations=geo.dilations, bias=bc,
                              activation=activation)
    y = _windowed(input.astype(compute), 0, _pairs(geo.pads), geo.output_nhwc[1:3], geo.strides, effs, cout,
                  compute, block)
    return y.astype(result_dtype)


def _pool(fn, input, ksize, strides, padding, kind):
    _check_image(fn, input)
    geo = _PoolGeometry(fn, input.shape, ksize, strides, padding, "NHWC", allow_explicit=kind == "max")
    compute, result_dtype = float_dtypes(fn, np.empty(0, input.dtype))
    n, h, w, c = geo.input_nhwc
    _, oh, ow, _ = geo.output_nhwc
    # The in-memory op's padding of each axis, (before, after).
    pads = [window_geometry(size, k, s, 1, geo.padding, axis)[1:]
            for axis, (size, k, s) in enumerate(zip((h, w), geo.ksize, geo.strides))]
    x = input.astype(compute)
    block = functools.partial(fastconv.max_pool2d if kind == "max" else fastconv.avg_pool2d, ksize=geo.ksize,
                              strides=geo.strides, padding="VALID")
    if kind == "max":
        return _windowed(x, -np.inf, pads, (oh, ow), geo.strides, geo.ksize, c, compute, block).astype(result_dtype)
    y = _windowed(x, 0, pads, (oh, ow), geo.strides, geo.ksize, c, compute, block)
    if any(p != (0, 0) for p in pads):
        # The window's mean over its real elements: the VALID mean over the zero-padded window
        # holds sum / (kh kw); scale each row and column by k / (its real elements).
        factors = []
        for size, out, k, s, (before, _) in zip((h, w), (oh, ow), geo.ksize, geo.strides, pads):
            start = np.arange(out) * s - before
            real = np.minimum(start + k, size) - np.maximum(start, 0)
            factors.append((k / real).astype(compute))
        fh = da.from_array(factors[0], chunks=(y.chunks[1],))[None, :, None, None]
        fw = da.from_array(factors[1], chunks=(y.chunks[2],))[None, None, :, None]
        y = y * fh * fw
    return y.astype(result_dtype)


def max_pool2d(input, ksize, strides, padding):
    """Max pooling of a chunked NHWC image, lazily: equals ``fastconv.max_pool2d`` exactly.

    ``ksize``, ``strides`` and ``padding`` ('SAME', 'VALID' or explicit pairs) as in the
    in-memory op; the image is padded with -inf where that op pads (padding never wins) and
    rechunked onto the stride grid as :func:`conv2d` describes.
    """
    return _pool("fastconv.dask.max_pool2d", input, ksize, strides, padding, "max")


def avg_pool2d(input, ksize, strides, padding):
    """Average pooling of a chunked NHWC image, lazily: equals ``fastconv.avg_pool2d`` (each
    window's mean over its real elements; within 1e-6 relative in float32).

    ``padding`` is 'SAME' or 'VALID'; the image is rechunked onto the stride grid as
    :func:`conv2d` describes.
    """
    return _pool("fastconv.dask.avg_pool2d", input, ksize, strides, padding, "avg")


# ------------------------------------------------------------------------- models on big images

# Layers that act on each pixel alone (in inference): they run chunk by chunk as they are.
_PIXELWISE = {"Activation", "ReLU", "LeakyReLU", "ELU", "BatchNormalization", "Dropout", "SpatialDropout2D",
              "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity", "Softmax"}
_MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
# Layers whose output mixes the whole image (or changes its shape to something else than an image).
_NOT_CONVOLUTIONAL = {"Flatten", "Dense", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape", "Permute",
                      "RepeatVector"}


def _refuse(layer, why):
    raise ValueError(f'fastconv.dask.apply: layer "{layer.name}" ({type(layer).__name__}) {why}; apply runs fully '
                     f"convolutional models (Conv2D, pooling, BatchNormalization, activations, Add/Concatenate, "
                     f"ZeroPadding2D) on one large image. For a model with Flatten, Dense or global pooling, "
                     f"predict per image with fastconv.dask.predict(model, images).")


def _channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        _refuse(layer, "is channels_first")


def _call_layer(chunk, layer):
    return layer._invoke_call(chunk, False)


def _call_merge(*chunks, layer):
    return layer._invoke_call(list(chunks), False)


def _apply_layer(layer, args):
    from fastconv.keras import activations

    kind = type(layer).__name__
    x = args[0]
    if kind == "Conv2D":
        _channels_last(layer)
        relu = layer.activation is activations.relu
        bias = layer.bias.value if layer.use_bias else None
        y = conv2d(x, layer.kernel.value, layer.strides, layer.padding.upper(), layer.dilation_rate, bias=bias,
                   activation="relu" if relu else None)
        return y if relu else y.map_blocks(layer.activation, dtype=y.dtype)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        _channels_last(layer)
        pool = max_pool2d if kind == "MaxPooling2D" else avg_pool2d
        return pool(x, layer.pool_size, layer.strides, layer.padding.upper())
    if kind == "ZeroPadding2D":
        _channels_last(layer)
        return da.pad(x, ((0, 0), *layer.padding, (0, 0)), mode="constant", constant_values=0)
    if kind in _PIXELWISE:
        if kind in ("BatchNormalization", "Softmax") and layer.axis not in (-1, 3):
            _refuse(layer, f"normalises along axis {layer.axis}, not the channels")
        return x.map_blocks(_call_layer, layer=layer, dtype=x.dtype)
    if kind in _MERGES:
        # Branches of other kernels leave other chunks (merged where a halo did not fit): take the first's.
        aligned = [a.rechunk(x.chunks) for a in args]
        return da.map_blocks(_call_merge, *aligned, layer=layer, dtype=x.dtype)
    if kind == "Concatenate":
        if layer.axis not in (-1, 3):
            _refuse(layer, f"concatenates along axis {layer.axis}, not the channels")
        first = args[0].chunks[:3]
        return da.concatenate([a.rechunk(first + (-1,)) for a in args], axis=3).rechunk({3: -1})
    if kind in _NOT_CONVOLUTIONAL:
        _refuse(layer, "is not fully convolutional (its output at a pixel depends on more than a window around it)")
    _refuse(layer, "is not one of the layers apply runs")


def apply(model, image):
    """Run a fully convolutional ``fastconv.keras`` model on a chunked NHWC image, lazily: equals
    ``model.predict(image)`` on the whole image (within 1e-5 relative in float32).

    ``image`` is a ``dask.array.Array`` chunked along N, H and W (not C).  The model's layers run
    one after the other on :func:`conv2d`, :func:`max_pool2d`, :func:`avg_pool2d` (each borrowing
    from its neighbours the halo its kernel, dilation, stride and padding need, so that the halos
    add up to the model's receptive field, and each padding the image border as the layer pads
    it), pixelwise layers (BatchNormalization, activations, inference-time dropout) chunk by
    chunk, Add and the other merges and Concatenate on aligned chunks, ZeroPadding2D with
    ``dask.array.pad``.  A model whose output is not an image (Flatten, Dense, global pooling,
    Reshape...) is refused: use :func:`predict` for it.
    """
    fn = "fastconv.dask.apply"
    _check_image(fn, image)
    if not hasattr(model, "_graph_for"):
        raise TypeError(f"{fn}: model must be a fastconv.keras Model or Sequential. Received: {type(model).__name__}")
    graph = model._graph_for((None,) + image.shape[1:])
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError(f'{fn}: model "{model.name}" has {len(graph.inputs)} inputs and {len(graph.outputs)} '
                         f"outputs; apply takes models of one image input and one output")
    graph.output_shapes([(image.shape[0],) + image.shape[1:]])  # the model's own message when the image does not fit
    values = {id(graph.inputs[0]): image.astype(np.float32)}
    for node in graph.nodes:
        y = _apply_layer(node.layer, [values[id(t)] for t in node.inputs])
        values[id(node.outputs[0])] = y
    return values[id(graph.outputs[0])]


# ------------------------------------------------------------------------- predictions on a cluster


def _active_client():
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client: the local scheduler
        return None


def _serialized(model):
    """The model as JSON and weights: what a worker rebuilds it from (no training state travels)."""
    return model.to_json(), [np.asarray(w) for w in model.get_weights()]


def _rebuild(payload):
    from fastconv.keras.models import model_from_json
    json_config, weights = payload
    model = model_from_json(json_config)
    model.set_weights(weights)
    return model


class _Predictor:
    """A model and the lock that runs its predictions one at a time on all the threads given."""

    def __init__(self, model, n_threads=None):
        self.model = model
        self.n_threads = n_threads
        self.lock = threading.Lock()

    def __reduce__(self):
        # Sent to another process (scheduler="processes"): the model as JSON and weights (a
        # pickled fastconv.keras model that has run keeps its graph's id()-keyed tables, stale
        # in the copy), and a lock of its own.
        return _rebuilt_predictor, (_serialized(self.model), self.n_threads)

    def __call__(self, images, batch_size):
        with self.lock:
            if self.n_threads is not None:
                fastconv.set_num_threads(self.n_threads)
            return self.model.predict(images, batch_size=batch_size, verbose=0)


def _rebuilt_predictor(payload, n_threads):
    return _Predictor(_rebuild(payload), n_threads)


def _model_plugin(name, payload):
    from distributed import WorkerPlugin

    class ModelOnWorker(WorkerPlugin):
        """Rebuilds the model once on each worker, which runs predictions one at a time with as
        many fastconv threads as the worker has threads (the worker's cores, not oversubscribed
        by tasks that each start their own OpenMP pool)."""

        def __init__(self):
            self.name = name
            self.payload = payload

        def setup(self, worker):
            self.predictor = _Predictor(_rebuild(self.payload), worker.state.nthreads)

    return ModelOnWorker()


def _has_worker_plugin(dask_scheduler, name):
    return name in dask_scheduler.worker_plugins


def _predict_on_worker(images, plugin_name, batch_size):
    from distributed import get_worker
    return get_worker().plugins[plugin_name].predictor(images, batch_size)


def predict(model, images, batch_size=32):
    """``model.predict`` over a dask array of images chunked along N, lazily: a dask array of the
    predictions, chunked as ``images`` along N, equal to ``model.predict`` on the same images.

    With an active ``dask.distributed.Client`` the model travels to each worker once (a worker
    plugin, registered under a name made from the model's configuration and weights, rebuilds it
    from its JSON and weights), and each worker runs one prediction at a time on as many fastconv
    threads as it has threads.  Without one the local scheduler runs the chunks, one prediction
    at a time on fastconv's default threads.  Each chunk is predicted in batches of
    ``batch_size``; the image axes (H, W, C) are rechunked into one chunk.
    """
    fn = "fastconv.dask.predict"
    if not isinstance(images, da.Array):
        raise TypeError(f"{fn}: images must be a dask.array.Array chunked along N. Received: images of type "
                        f"{type(images).__name__}")
    if not hasattr(model, "predict") or not hasattr(model, "to_json"):
        raise TypeError(f"{fn}: model must be a fastconv.keras Model or Sequential. Received: {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be a positive int. Received: batch_size={batch_size!r}")
    images = images.rechunk((images.chunks[0],) + (-1,) * (images.ndim - 1))
    out_shape = model._graph_for((None,) + images.shape[1:]).output_shapes([images.shape])
    if len(out_shape) != 1:
        raise ValueError(f'{fn}: model "{model.name}" has {len(out_shape)} outputs; predict takes models of one output')
    out_shape = out_shape[0]
    chunks = (images.chunks[0],) + tuple((d,) for d in out_shape[1:])
    axes = {}
    if len(out_shape) < images.ndim:
        axes["drop_axis"] = list(range(len(out_shape), images.ndim))
    elif len(out_shape) > images.ndim:
        axes["new_axis"] = list(range(images.ndim, len(out_shape)))
    client = _active_client()
    if client is None:
        return images.map_blocks(_Predictor(model), batch_size, chunks=chunks, dtype=np.float32, **axes)
    payload = _serialized(model)
    name = "fastconv-model-" + dask.base.tokenize(*payload)
    # Once per model: a plugin registered again under its name would be set up again on every worker.
    if not client.run_on_scheduler(_has_worker_plugin, name=name):
        client.register_plugin(_model_plugin(name, payload), name=name)
    return images.map_blocks(_predict_on_worker, name, batch_size, chunks=chunks, dtype=np.float32, **axes)

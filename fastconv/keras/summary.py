"""``model.summary()``: Keras 3's table (rich's box drawing, rendered here without rich).

Sequential, subclassed and chain-like functional models get the columns Layer (type) / Output Shape /
Param #, in a table 88 characters wide; other functional models also Connected to, 108 wide;
both are narrowed to the terminal's width minus 4, as Keras does.  Below the table: total,
trainable and non-trainable parameter counts with their size in bytes, and the optimizer's
state once it exists.
"""
import collections
import shutil


def _memory(arrays):
    return sum(a.size * a.dtype.itemsize for a in arrays)


def readable_size(n_bytes):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes / 1024 < 1:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} PB"


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _rich_widths(positions, line_length, n_columns):
    """The content widths of the columns, as rich lays out Keras's table: each column asks for
    its share of line_length plus 2 of padding; the excess over the room left by the n + 1
    borders is taken from the columns in turn (round-half-even shares, as Python's round)."""
    widths, current = [], 0
    for pos in positions:
        w = int(pos * line_length) - current
        if w < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(w + 2)
        current += w
    room = line_length - (n_columns + 1)
    excess = sum(widths) - room
    if excess > 0:
        remaining, columns_left = excess, len(widths)
        for i in range(len(widths)):
            cut = min(widths[i], round(remaining / columns_left))
            widths[i] -= cut
            remaining -= cut
            columns_left -= 1
    return [w - 2 for w in widths]


def _wrap(text, width):
    """Words wrapped to ``width``; a word longer than the width is cut with an ellipsis."""
    lines, line = [], ""
    for word in text.split(" "):
        if len(word) > width:
            word = word[:width - 1] + "…"
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return lines


def _table(header, rows, widths, align):
    def border(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row_lines(cells, edge):
        wrapped = [_wrap(c, w) for c, w in zip(cells, widths)]
        height = max(len(w) for w in wrapped)
        out = []
        for k in range(height):
            parts = []
            for lines, w, a in zip(wrapped, widths, align):
                text = lines[k] if k < len(lines) else ""
                parts.append(" " + (text.rjust(w) if a == "right" else text.ljust(w)) + " ")
            out.append(edge + edge.join(parts) + edge)
        return out

    out = [border("┏", "━", "┳", "┓")] + row_lines(header, "┃") + [border("┡", "━", "╇", "┩")]
    for i, cells in enumerate(rows):
        out += row_lines(cells, "│")
        out.append(border("├", "─", "┼", "┤") if i < len(rows) - 1 else border("└", "─", "┴", "┘"))
    if not rows:
        out[-1] = border("└", "━", "┴", "┘")
    return out


def _output_shape_text(layer, nodes, subclassed=False, batch_shapes=None):
    """The output shape(s) of ``layer``'s calls among ``nodes``.  A subclassed model's layers
    show their first call only, at the model's first batch when it has seen one
    (``batch_shapes``: {id(tensor): shape}), as Keras shows the shapes its layers were built at."""
    mine = [n for n in layer._inbound_nodes if n in nodes]
    if not mine and subclassed and layer._inbound_nodes:
        # Called only in another trace of the model's call() (e.g. a layer used in training only).
        mine = layer._inbound_nodes[-1:]
    if not mine:
        return "?"
    if subclassed:
        mine = mine[:1]
    shapes = [_shape_text((batch_shapes or {}).get(id(t), t.shape)) for n in mine for t in n.outputs]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _is_chain(model, nodes):
    """Keras's "sequential-like": one node per depth (no branch, no join) and no shared layer;
    a subclassed model is listed as a plain sequence of its layers."""
    if model._is_sequential or model._subclassed:
        return True
    readers = collections.Counter(id(t) for n in nodes for t in n.inputs)
    return (all(len(n.inputs) <= 1 for n in nodes) and all(c <= 1 for c in readers.values())
            and len({id(n.layer) for n in nodes}) == len(nodes))


def print_summary(model, line_length=None, positions=None, print_fn=None):
    nodes = model._plot_nodes()
    chain = _is_chain(model, nodes)
    if chain:
        default_length, positions = 88, positions or [0.45, 0.80, 1.0]
        header, align = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    else:
        default_length, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header, align = ["Layer (type)", "Output Shape", "Param #", "Connected to"], ["left", "left", "right", "left"]
    line_length = line_length or min(default_length, shutil.get_terminal_size().columns - 4)
    widths = _rich_widths(positions, line_length, len(header))

    rows = []
    batch_shapes = model._summary_shapes()
    for layer in model._summary_layers():
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        shape = _output_shape_text(layer, nodes, model._subclassed, batch_shapes)
        cells = [f"{layer.name} ({type(layer).__name__})", shape, params]
        if not chain:
            sources = []
            for node in layer._inbound_nodes:
                if node not in nodes:
                    continue
                for t in node.inputs:
                    producer, n_index, t_index = t._keras_history
                    sources.append(f"{producer.name}[{n_index}][{t_index}]")
            cells.append(", ".join(sources) or "-")
        rows.append(cells)

    trainable = model.trainable_weights
    non_trainable = model.non_trainable_weights
    t_count = sum(w.value.size for w in trainable)
    n_count = sum(w.value.size for w in non_trainable)
    t_bytes = _memory([w.value for w in trainable])
    n_bytes = _memory([w.value for w in non_trainable])
    optimizer = getattr(model, "optimizer", None)
    o_arrays = [a for _, a in optimizer.variables] if optimizer is not None and optimizer.built else None
    o_count = sum(a.size for a in o_arrays) if o_arrays else 0
    o_bytes = _memory(o_arrays) if o_arrays else 0

    lines = [f'Model: "{model.name}"'] + _table(header, rows, widths, align)
    lines.append(f" Total params: {t_count + n_count + o_count:,} ({readable_size(t_bytes + n_bytes + o_bytes)})")
    lines.append(f" Trainable params: {t_count:,} ({readable_size(t_bytes)})")
    lines.append(f" Non-trainable params: {n_count:,} ({readable_size(n_bytes)})")
    if o_arrays:
        lines.append(f" Optimizer params: {o_count:,} ({readable_size(o_bytes)})")
    text = "\n".join(lines) + "\n"  # Keras hands print_fn the text with its final newline
    if print_fn is None:
        print(text, end="")
    else:
        print_fn(text)

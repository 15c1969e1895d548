"""CUDA graphs over a denoiser's whole forward, one graph per shape of its inputs (`--cuda-graphs`).

A captured graph replays every kernel of a forward with one launch, so the GPU no longer waits for the CPU to
launch them one by one: Python between the blocks, Dynamo's guards, the many small kernels before and after
the blocks. `torch.compile(mode="reduce-overhead")` cannot do it for Z-Image: its blocks are compiled
regionally, one graph for all thirty, and each block's replay overwrote the output the next block was reading
(docs/PERFORMANCE.md, ninth session). This captures one level up, the denoiser's `forward`, with torch's own
`torch.cuda.CUDAGraph`, on top of the compiled blocks.

How a call goes (`GraphedForward`):
- the call's tensors (their shapes, dtypes, devices) and its other arguments make its key;
- the first call with a key runs normally: it warms up what is lazy (Dynamo compiles, cuBLAS workspaces, the
  RoPE table moved to the device);
- the second captures the forward into a graph: the inputs are copied into the graph's own input tensors,
  the capture runs on a side stream (the GPU keeps working on what was queued), then the graph replays;
- every later call copies its inputs in, replays, and gets clones of the outputs (the next replay writes over
  the graph's own).
A capture that fails (an operation that cannot be captured, such as CPU offload's weight moves) leaves that
key running normally, with one warning. All graphs share one memory pool; replays never overlap, since one
pipeline call runs on the device at a time (tools/models.py).

What a graph cannot see: it holds the addresses of the weights and the values of Python numbers as they were
at the capture. Whoever moves the weights off the device, loads or reweights LoRAs, or changes the attention
backend calls `clear(pipe)` first (ModelManager does).

torch is imported inside the functions: importing this module loads nothing heavy.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict

log = logging.getLogger(__name__)

MAX_GRAPHS = 16  # graphs kept per denoiser, least recently used dropped first
NEEDS_CUDA = "--cuda-graphs needs a CUDA GPU; leave it out on this machine"
_PLAIN = (type(None), bool, int, float, str)


def _key(leaves: list, spec) -> tuple | None:
    """What makes two calls the same graph, or None for a call that is not graphed (a CPU tensor, a
    gradient being recorded, an argument that is neither a tensor nor a plain value)."""
    import torch

    if torch.is_grad_enabled():
        return None
    parts: list = [str(spec)]
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            if leaf.device.type != "cuda":
                return None
            parts.append((tuple(leaf.shape), leaf.stride(), leaf.dtype, str(leaf.device)))
        elif isinstance(leaf, _PLAIN):
            parts.append((type(leaf).__name__, leaf))
        else:
            return None
    return tuple(parts)


class _Graph:
    """One captured forward: its input tensors, the graph, its output tensors."""

    def __init__(self, graph, inputs: list, outputs: list, out_spec):
        self.graph, self.inputs, self.outputs, self.out_spec = graph, inputs, outputs, out_spec

    def run(self, leaves: list):
        import torch
        from torch.utils._pytree import tree_unflatten

        for mine, given in zip(self.inputs, leaves):
            if isinstance(mine, torch.Tensor) and mine.data_ptr() != given.data_ptr():
                mine.copy_(given)
        self.graph.replay()
        fresh = [o.clone() if isinstance(o, torch.Tensor) else o for o in self.outputs]
        return tree_unflatten(fresh, self.out_spec)


class GraphedForward:
    """A module's forward, captured into CUDA graphs per input key (module docstring). Installed by
    `install`, it stands in the module's `forward` attribute; `counts` says how calls went."""

    def __init__(self, forward, max_graphs: int = MAX_GRAPHS):
        self.forward = forward
        self.max_graphs = max_graphs
        self.seen: set = set()
        self.failed: set = set()
        self.graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self.counts: Counter[str] = Counter()  # eager, captured, replayed, capture failed
        self.pool = None

    def __call__(self, *args, **kwargs):
        from torch.utils._pytree import tree_flatten

        leaves, spec = tree_flatten((args, kwargs))
        key = _key(leaves, spec)
        if key is None or key in self.failed:
            return self._eager(args, kwargs)
        graph = self.graphs.get(key)
        if graph is None:
            if key not in self.seen:
                self.seen.add(key)
                return self._eager(args, kwargs)
            graph = self._capture(key, leaves, spec)
            if graph is None:
                return self._eager(args, kwargs)
        self.graphs.move_to_end(key)
        self.counts["replayed"] += 1
        return graph.run(leaves)

    def _eager(self, args, kwargs):
        self.counts["eager"] += 1
        return self.forward(*args, **kwargs)

    def _capture(self, key: tuple, leaves: list, spec) -> _Graph | None:
        import torch
        from torch.utils._pytree import tree_flatten, tree_unflatten

        inputs = [x.clone() if isinstance(x, torch.Tensor) else x for x in leaves]
        args, kwargs = tree_unflatten(inputs, spec)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(stream):
                # thread_local: another thread's CUDA calls (a critic, a PNG copy) do not break this capture
                graph.capture_begin(pool=self.pool, capture_error_mode="thread_local")
                try:
                    out = self.forward(*args, **kwargs)
                finally:
                    graph.capture_end()
        except Exception as err:
            self.failed.add(key)
            self.counts["capture failed"] += 1
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.warning("CUDA graph capture of the denoiser failed, that shape runs without one: %s", first)
            return None
        torch.cuda.current_stream().wait_stream(stream)
        outputs, out_spec = tree_flatten(out)
        made = _Graph(graph, inputs, outputs, out_spec)
        self.graphs[key] = made
        self.counts["captured"] += 1
        while len(self.graphs) > self.max_graphs:
            self.graphs.popitem(last=False)
        return made

    def clear(self) -> None:
        """Drop every graph (the weights moved, or something a graph baked in changed); the next calls of
        each key run normally once, then capture again."""
        self.graphs.clear()
        self.seen.clear()
        self.failed.clear()
        # A fresh pool for the next captures: once its last graph is gone, torch releases the old pool, and
        # capturing into its stale handle fails an internal assert of the caching allocator (seen on an H200
        # after set_attention switched backends, eleventh session).
        self.pool = None


def cuda_graphs_unavailable() -> str | None:
    """Why `--cuda-graphs` cannot run on this machine, or None when it can."""
    import torch

    return None if torch.cuda.is_available() else NEEDS_CUDA


def install(denoiser) -> GraphedForward:
    """Graph `denoiser`'s forward (once: a second call returns the installed one). Needs a CUDA device."""
    from tools.errors import SettingsError

    current = denoiser.forward
    if isinstance(current, GraphedForward):
        return current
    problem = cuda_graphs_unavailable()
    if problem:
        raise SettingsError(problem)
    graphed = GraphedForward(current)
    # an instance attribute: nn.Module.__call__ finds it before the class's forward
    denoiser.forward = graphed
    return graphed


def graphed(pipe) -> GraphedForward | None:
    """The pipeline denoiser's GraphedForward, or None when it has none."""
    forward = getattr(getattr(pipe, "transformer", None), "forward", None)
    return forward if isinstance(forward, GraphedForward) else None


def clear(pipe) -> None:
    """Drop the pipeline's graphs, if it has any (before its weights move or its LoRAs change)."""
    found = graphed(pipe)
    if found is not None:
        found.clear()

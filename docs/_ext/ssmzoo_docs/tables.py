"""reStructuredText generated from the registry for the hand-written pages: hooks, backends,
tasks, models and plugins. Pure functions (registry in, text out), like :mod:`.render`."""

from __future__ import annotations

import importlib
import inspect
from collections import Counter
from collections.abc import Callable
from typing import Any

from ssmzoo.registry import Entry, Registry, natural_key

from .render import (
    autodoc_directive,
    hook_target,
    hparam_table,
    inline,
    list_table,
    literal,
    title,
)

__all__ = ["hook_names", "hooks_rst", "backends_rst", "entries_rst", "plugins_rst", "task_target",
           "model_target"]


def task_target(name: str) -> str:
    return f"task-{name}"


def model_target(name: str) -> str:
    return f"model-{name}"


# ---- hooks --------------------------------------------------------------------------------------

def hook_names() -> list[str]:
    """Every hook specification in :mod:`ssmzoo.hookspecs`, in the order the loader calls them."""
    from ssmzoo import hookspecs
    from ssmzoo.plugins import PHASES

    specs = [name for name, obj in vars(hookspecs).items()
             if callable(obj) and hasattr(obj, "ssmzoo_spec")]
    order = {name: i for i, name in enumerate(PHASES)}
    return sorted(specs, key=lambda n: (order.get(n, len(order)), n))


def _implementers(registry: Registry, hook: str) -> list[str]:
    """Loaded plugins whose module implements ``hook`` (a function marked ``@ssmzoo.hookimpl``)."""
    out = []
    for info in registry.plugins:
        if info.state != "loaded":
            continue
        try:
            module = importlib.import_module(info.module.split(":")[0])
        except Exception:  # noqa: BLE001 - recorded by the loader already
            continue
        impl = getattr(module, hook, None)
        if impl is not None and hasattr(impl, "ssmzoo_impl"):
            out.append(info.name)
    return sorted(out, key=natural_key)


# An example implementation of each hook, shown under it: (file under docs/, function or None
# for the whole file). Every file here is run by tests/test_docs.py.
HOOK_EXAMPLES: dict[str, tuple[str, str | None]] = {
    "ssmzoo_register_units": ("examples/ssmzoo-lru/ssmzoo_lru/__init__.py",
                              "ssmzoo_register_units"),
    "ssmzoo_register_variants": ("examples/ssmzoo-lru/ssmzoo_lru/__init__.py",
                                 "ssmzoo_register_variants"),
    "ssmzoo_register_backends": ("examples/hooks/float64_backend.py", None),
    "ssmzoo_register_tasks": ("examples/hooks/parity_task.py", None),
}


def _example(name: str) -> list[str]:
    if name not in HOOK_EXAMPLES:
        return []
    path, function = HOOK_EXAMPLES[name]
    lines = ["For example" + (f", from ``{path}``:" if function else
                              f", a whole plugin module (``{path}``):"), "",
             f".. literalinclude:: /{path}", "   :language: python"]
    if function:
        lines.append(f"   :pyobject: {function}")
    return [*lines, ""]


def hooks_rst(registry: Registry) -> str:
    """One section per hook: its signature and docstring (autodoc), when the loader calls it,
    which of the installed plugins implement it, and an example implementation."""
    from ssmzoo.plugins import PHASES

    out: list[str] = []
    names = hook_names()
    for name in names:
        out += [f".. _{hook_target(name)}:", ""]
        out += title(name, "-")
        out += [f".. autofunction:: ssmzoo.hookspecs.{name}", ""]
        if name in PHASES:
            i = PHASES.index(name)
            when = f"Called in phase {i + 1} of {len(PHASES)}"
            if i > 0:
                when += f", after every plugin's ``{PHASES[i - 1]}``"
            out += [when + ".", ""]
        impls = _implementers(registry, name)
        if impls:
            out += ["Implemented by the plugins installed in this build: "
                    + ", ".join(literal(n) for n in impls) + ".", ""]
        else:
            out += ["No plugin installed in this build implements it.", ""]
        out += _example(name)
    return "\n".join(out).rstrip() + "\n"


# ---- backends -----------------------------------------------------------------------------------

def _priority(backend: Any, device: str) -> str:
    """The auto rank on ``device``; per scan when the backend ranks its scans differently."""
    def show(p: int | None) -> str:
        return "never" if p is None else str(p)

    try:
        per_op = {op: backend.op_priority(op, device) for op in backend.ops}
        if not per_op:
            return show(backend.priority(device))
    except Exception as exc:  # noqa: BLE001 - shown, not hidden
        return f"error: {type(exc).__name__}"
    if len(set(per_op.values())) == 1:
        return show(next(iter(per_op.values())))
    return ", ".join(f"{op}: {show(p)}" for op, p in per_op.items())


def backends_rst(registry: Registry) -> str:
    """The table of scan backends: operations, availability here (or why not), the order that
    ``backend="auto"`` tries them on CPU and on CUDA, and the plugin that registered each."""
    backends = registry.backends
    if not backends:
        return "No scan backend is registered in this build.\n"
    rows = []
    for name in sorted(backends, key=natural_key):
        b = backends[name]
        try:
            ok, reason = b.available()
        except Exception as exc:  # noqa: BLE001 - a broken probe is itself the answer
            ok, reason = False, f"availability check raised {type(exc).__name__}: {exc}"
        status = "yes" if ok else f"no: {inline(reason)}"
        ops = ", ".join(literal(o) for o in getattr(b, "ops", ()))
        rows.append([literal(name), ops, status, _priority(b, "cpu"), _priority(b, "cuda"),
                     literal(registry.backend_plugin(name)),
                     inline(getattr(b, "description", "") or "")])
    header = ["backend", "scans", "available here", "auto order (CPU)", "auto order (CUDA)",
              "plugin", "what it is"]
    text = list_table(header, rows, widths=[10, 14, 18, 8, 8, 10, 32])
    text += ["*available here* describes the machine that built these pages; ``ssmzoo backends`` "
             "tells the same for yours. In the *auto order* columns, lower numbers are tried first "
             "and *never* means the backend runs only when named explicitly.", ""]
    return "\n".join(text).rstrip() + "\n"


# ---- tasks and models ---------------------------------------------------------------------------

def _task_facts(factory: Any) -> list[tuple[str, str]]:
    """What a task class says about itself: the model kind it trains and its main metric."""
    facts = []
    kind = getattr(factory, "kind", None)
    if isinstance(kind, str):
        facts.append(("model kind", f":ref:`{kind} <{model_target(kind)}>`"))
    metric = getattr(factory, "metric", None)
    if isinstance(metric, str):
        better = getattr(factory, "higher_is_better", None)
        arrow = {True: " (higher is better)", False: " (lower is better)"}.get(better, "")
        facts.append(("metric", literal(metric) + arrow))
    return facts


def entries_rst(registry: Registry, entries: dict[str, Entry], kind: str,
                target: Callable[[str], str], heading: str = "-") -> str:
    """One section per registered task or model kind: summary, plugin, the model kind and metric
    (tasks), the hyperparameter table and the factory's docstring; tasks get a table first."""
    if not entries:
        return f"No {kind} is registered in this build.\n"
    out: list[str] = []
    names = sorted(entries, key=natural_key)
    if kind == "task":
        rows = []
        for name in names:
            facts = dict(_task_facts(entries[name].factory))
            rows.append([f":ref:`{name} <{target(name)}>`", facts.get("model kind", ""),
                         facts.get("metric", ""), inline(entries[name].doc)])
        out += list_table(["task", "model", "metric", "what it is"], rows,
                          widths=[16, 14, 22, 48])
    for name in names:
        e = entries[name]
        out += [f".. _{target(name)}:", "", f".. index:: single: {name}; {kind}", ""]
        out += title(name, heading)
        if e.doc:
            out += [inline(e.doc), ""]
        out += [f":plugin: {literal(e.plugin)}"]
        if kind == "task":
            out += [f":{key}: {value}" for key, value in _task_facts(e.factory)]
        out += [""]
        out += hparam_table(e.hparams)
        directive = autodoc_directive(e.factory)
        if directive and inspect.getdoc(e.factory):
            out += directive
    return "\n".join(out).rstrip() + "\n"


# ---- plugins ------------------------------------------------------------------------------------

def plugins_rst(registry: Registry) -> str:
    """The table of plugins found in the ``ssmzoo`` entry-point group, as ``ssmzoo plugins``
    shows it: entry point, module, distribution and version, state, what it registered."""
    if not registry.plugins:
        return "No plugin is installed in this build.\n"
    rows = []
    for info in sorted(registry.plugins, key=lambda i: natural_key(i.name)):
        counts = Counter(kind for kind, _ in info.registered)
        what = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(counts.items()))
        state = info.state if info.state != "failed" else f"failed: {inline(info.error or '')}"
        rows.append([literal(info.name), literal(info.module),
                     inline(f"{info.distribution} {info.version}"), state, what or "nothing"])
    return "\n".join(list_table(["entry point", "module", "distribution", "state", "registered"],
                                rows, widths=[12, 22, 16, 20, 30])).rstrip() + "\n"


# ---- what each backend supports, probed ---------------------------------------------------------

def probe_device() -> str:
    """Where the support probes put their tensors: CUDA when there is a GPU, else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _scan_cases(device: str = "cpu") -> dict[str, Any]:
    """Small calls on ``device``, one per feature of ``selective_scan`` and ``ssd_scan``, built
    as the public functions would pack them (mamba_ssm's layouts)."""
    import torch

    from ssmzoo.scan.backend import SelectiveScanCall, SSDCall

    g = torch.Generator().manual_seed(0)
    b, d, n, l, groups = 1, 4, 3, 5, 2

    def r(*shape: int, dtype: Any = torch.float32) -> Any:
        return torch.randn(*shape, generator=g, dtype=dtype).to(device)

    A, Ac = -r(d, n).exp(), torch.complex(-r(d, n).exp(), r(d, n))  # (d, n)
    base = dict(u=r(b, d, l), delta=r(b, d, l), A=A, B=r(b, n, l), C=r(b, n, l))
    cplx = dict(base, A=Ac, B=r(b, n, 2 * l), C=r(b, n, 2 * l))
    cases: dict[str, Any] = {
        "real A, variable B and C, Euler (mamba_ssm's call)": SelectiveScanCall(**base),
        "D, z gate, delta_bias, softplus": SelectiveScanCall(
            **base, D=r(d), z=r(b, d, l), delta_bias=r(d), delta_softplus=True),
        "fixed B and C, (d, n) (S4D)": SelectiveScanCall(**dict(base, B=r(d, n), C=r(d, n))),
        "grouped B and C, (b, g, n, l)": SelectiveScanCall(
            **dict(base, B=r(b, groups, n, l), C=r(b, groups, n, l))),
        "complex A": SelectiveScanCall(**cplx),
        "zero-order hold (discretization=\"zoh\")": SelectiveScanCall(**base,
                                                                      discretization="zoh"),
        "B_bias and C_bias (B2S6)": SelectiveScanCall(**base, B_bias=r(d, n), C_bias=r(d, n)),
        "initial_state, return_last_state": SelectiveScanCall(
            **base, initial_state=r(b, d, n), return_last_state=True),
        "half precision (bfloat16 u, delta, B, C)": SelectiveScanCall(
            **{k: (v if k == "A" else v.to(torch.bfloat16)) for k, v in base.items()}),
    }
    heads, p = 2, 3
    ssd = dict(x=r(b, l, heads, p), dt=r(b, l, heads), A=-r(heads).exp(),
               B=r(b, l, 1, n), C=r(b, l, 1, n), chunk_size=2)
    cases["ssd_scan: chunked SSD"] = SSDCall(**ssd)
    cases["ssd_scan: D, z, dt_bias, initial and final states"] = SSDCall(
        **ssd, D=r(heads), z=r(b, l, heads, p), dt_bias=r(heads), dt_softplus=True,
        initial_states=r(b, heads, p, n), return_final_states=True)
    return cases


def support_matrix(registry: Registry) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Ask each backend about each feature call of :func:`_scan_cases`.

    Returns ``(unavailable, matrix)``: the reason of each backend that is not available here
    (not asked), and ``matrix[feature][backend] = (ok, reason)`` for the others.
    """
    backends = dict(sorted(registry.backends.items(), key=lambda kv: natural_key(kv[0])))
    unavailable = {}
    for name, b in backends.items():
        try:
            ok, why = b.available()
        except Exception as exc:  # noqa: BLE001 - a broken probe is itself the answer
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            unavailable[name] = why
    matrix: dict[str, dict[str, Any]] = {}
    for feature, call in _scan_cases(probe_device()).items():
        matrix[feature] = {}
        for name, b in backends.items():
            if name in unavailable:
                continue
            probe = b.supports_ssd_scan if feature.startswith("ssd_scan") else \
                b.supports_selective_scan
            try:
                matrix[feature][name] = probe(call)
            except Exception as exc:  # noqa: BLE001
                matrix[feature][name] = (False, f"raised {type(exc).__name__}: {exc}")
    return unavailable, matrix


def support_rst(registry: Registry) -> str:
    """A table of scan features (rows) by backend (columns), asked of each backend that is
    available on the machine building the docs, through its own ``supports_*`` method."""
    if not registry.backends:
        return "No scan backend is registered in this build.\n"
    unavailable, matrix = support_matrix(registry)
    names = [n for n in sorted(registry.backends, key=natural_key) if n not in unavailable]
    rows = []
    for feature, answers in matrix.items():
        row = [inline(feature)]
        for name in names:
            ok, why = answers[name]
            row.append("yes" if ok else f"no: {inline(why)}")
        rows.append(row)
    text = list_table(["feature", *(literal(n) for n in names)], rows)
    text += [f"Each cell is the backend's own answer (its ``supports_selective_scan`` or "
             f"``supports_ssd_scan``) to a small call with that feature on {probe_device().upper()}"
             " tensors; a backend that answers no says why, and ``backend=\"auto\"`` moves on to "
             "the next one.", ""]
    if unavailable:
        text += ["Not available on the machine that built these pages, so not asked: "
                 + "; ".join(f"``{n}`` ({inline(why)})" for n, why in unavailable.items())
                 + ". ``ssmzoo backends`` shows what is available on yours.", ""]
    return "\n".join(text).rstrip() + "\n"

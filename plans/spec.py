"""Plans stated once: one parameter spec gives the queue-server annotation and the run-time check.

A plan is declared with :func:`adscan_plan`, one :class:`Param` per argument::

    @adscan_plan("Step one motor ...", motor=motor("The motor to step."),
                 start=position("First position.", motor="motor"), ...)
    def adscan_scan(motor: Movable, start: float, ...) -> MsgGenerator:
        return bp.scan(detectors, motor, start, stop, num=num, md=md)

The decorator gives the function its ``parameter_annotation_decorator`` annotation (what the
queue server checks at submission and lists in ``existing_plans_and_devices.yaml``), checks
and resolves every argument when the plan starts (device names to devices, bounds, soft
limits) before anything moves, records the command as called in the start document and runs
the plan with ``frames`` images per point (:func:`adscan.plans.frames.with_frames`).

Device names and defaults come from the configuration: :func:`configure_plans` (called by
:func:`adscan.core.startup.init_plans`) fills them in; nothing is read when this is imported.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bluesky import preprocessors as bpp
from bluesky_queueserver import parameter_annotation_decorator

from adscan.core.schema import ADSCAN_COMMAND, ADSCAN_PLAN, FRAMES_PER_POINT
from adscan.plans.metadata import MD_DESCRIPTION, PlanArgumentError, check_md

MAX_FRAMES = 1000
MAX_POINTS = 100_000
MAX_DELAY = 3600.0


@dataclass
class PlanSettings:
    """What the configuration gives the plans (see :func:`configure_plans`)."""

    motors: list[str] = field(default_factory=list)
    detectors: list[str] = field(default_factory=list)
    default_frames: int = 1
    reconnect_timeout: float = 0.0  # s; configure_plans sets epics.reconnect_timeout

    @property
    def default_detectors(self) -> tuple[str, ...]:
        return tuple(self.detectors[:1])


SETTINGS = PlanSettings()
PLANS: dict[str, Callable] = {}  # every plan declared with adscan_plan, by name


def _registry() -> dict[str, Any]:
    from adscan.devices import REGISTRY

    return REGISTRY


def resolve(obj: Any, kind: str) -> Any:
    """A device from its name (``REGISTRY``), or ``obj`` itself if it is not a name."""
    if isinstance(obj, str):
        registry = _registry()
        if obj not in registry:
            known = ", ".join(sorted(registry)) or "none connected"
            raise PlanArgumentError(f"unknown {kind} {obj!r} (known: {known})")
        return registry[obj]
    return obj


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanArgumentError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PlanArgumentError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def check_position(motor: Any, name: str, value: Any) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value):
        raise PlanArgumentError(f"{name} must be a finite number, got {value!r}")
    low, high = getattr(motor, "limits", (0, 0))
    if low < high and not low <= value <= high:
        raise PlanArgumentError(
            f"{name}={value} is outside the soft limits of {motor.name} [{low}, {high}]"
        )
    return value


def names(objs: Sequence[Any]) -> list[str]:
    return [getattr(o, "name", str(o)) for o in objs]


def check_detectors(detectors: Any) -> list[Any]:
    if detectors is not None and (
        isinstance(detectors, str | bytes | dict) or not isinstance(detectors, Sequence)
    ):
        raise PlanArgumentError(f"detectors must be a list of detector names, got {detectors!r}")
    if detectors is not None and len(detectors) == 0:
        raise PlanArgumentError(
            "detectors=[] names no detector: give at least one, or leave "
            f"detectors out for the default {list(SETTINGS.default_detectors)}"
        )
    dets = [resolve(d, "detector") for d in (detectors or SETTINGS.default_detectors)]
    if not dets:
        raise PlanArgumentError("no detector: give detectors=[...]")
    found = names(dets)
    if len(set(found)) != len(found):
        raise PlanArgumentError(
            f"detectors must not repeat a detector, got {len(found)} "
            f"entries for {sorted(set(found))}"
        )
    return dets


# --------------------------------------------------------------------------- parameter specs


@dataclass(frozen=True)
class Param:
    """One plan argument: its queue-server annotation and its run-time check.

    ``kind`` picks both: ``motor``, ``detector``, ``detectors``, ``position`` (checked against
    the soft limits of the motor argument named ``motor``), ``count`` (an int in
    [``min``, ``max``]), ``number`` (a float in [``min``, ``max``]), ``bool`` or ``md``.
    ``order`` sets which arguments are checked first (so a bad detector list is named first).
    """

    description: str
    kind: str
    min: float | None = None
    max: float | None = None
    motor: str | None = None  # for positions: the argument holding the motor
    label: str | None = None  # the name used in messages (default: the argument's)

    ORDER = {
        "detectors": 0,
        "detector": 0,
        "motor": 1,
        "count": 2,
        "bool": 3,
        "number": 3,
        "position": 4,
        "md": 5,
    }

    def annotation(self) -> dict[str, Any]:
        """The ``parameter_annotation_decorator`` entry of this argument."""
        ann: dict[str, Any] = {"description": self.description}
        if self.kind == "motor":
            ann.update(annotation="Motors", devices={"Motors": list(SETTINGS.motors)})
        elif self.kind == "detector":
            ann.update(annotation="Detectors", devices={"Detectors": list(SETTINGS.detectors)})
        elif self.kind == "detectors":
            ann.update(
                annotation="typing.List[Detectors]", devices={"Detectors": list(SETTINGS.detectors)}
            )
        elif self.kind == "count":
            ann.update(annotation="int")
        elif self.kind in ("position", "number"):
            ann.update(annotation="float")
        elif self.kind == "bool":
            ann.update(annotation="bool")
        elif self.kind == "md":
            ann.update(annotation="typing.Dict[str, typing.Any]")
        for bound in ("min", "max"):
            if getattr(self, bound) is not None:
                ann[bound] = getattr(self, bound)
        return ann

    def check(self, name: str, value: Any, bound: dict[str, Any]) -> Any:
        """The checked (and resolved) value; raises :class:`PlanArgumentError`."""
        label = self.label or name
        if self.kind in ("motor", "detector"):
            return resolve(value, self.kind)
        if self.kind == "detectors":
            return check_detectors(value)
        if self.kind == "count":
            return check_int(label, value, int(self.min), int(self.max))
        if self.kind == "position":
            return check_position(bound[self.motor], label, value)
        if self.kind == "number":
            lo = -math.inf if self.min is None else self.min
            hi = math.inf if self.max is None else self.max
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not lo <= value <= hi
            ):
                span = f"from {lo:g} to {hi:g}" if hi < math.inf else f">= {lo:g}"
                raise PlanArgumentError(f"{label} must be a number {span}, got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise PlanArgumentError(f"{label} must be True or False, got {value!r}")
            return value
        if self.kind == "md":
            return check_md(value)
        raise TypeError(f"unknown parameter kind {self.kind!r}")


def motor(description: str) -> Param:
    return Param(description, "motor")


def position(description: str, motor: str = "motor", label: str | None = None) -> Param:
    return Param(description, "position", motor=motor, label=label)


def points(description: str) -> Param:
    return Param(description, "count", min=1, max=MAX_POINTS)


FRAMES = Param(f"Images per point (1 to {MAX_FRAMES}).", "count", min=1, max=MAX_FRAMES)
MD = Param(MD_DESCRIPTION, "md")


def detectors_param() -> Param:
    return Param(
        f"Area detectors to trigger at each point (default {list(SETTINGS.default_detectors)}).",
        "detectors",
    )


# --------------------------------------------------------------------------- the decorator


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return repr(names(value))
    if hasattr(value, "name") and not isinstance(value, str | int | float):
        return value.name
    return repr(value) if isinstance(value, str) else str(value)


def command_as_called(plan_name: str, sig: inspect.Signature, bound: dict[str, Any]) -> str:
    """``plan(m1, -1, 1, 5, frames=3, detectors=['simdet'])``: arguments without a default
    positionally, the others by keyword, devices by name, ``md`` left out."""
    words = []
    for name, p in sig.parameters.items():
        if name == "md":
            continue
        text = _shown(bound[name])
        words.append(text if p.default is inspect.Parameter.empty else f"{name}={text}")
    return f"{plan_name}({', '.join(words)})"


def adscan_plan(
    description: str,
    *,
    frames_wrapper: bool = True,
    checks: Sequence[Callable[[dict[str, Any]], None]] = (),
    **params: Param,
):
    """Declare an adscan plan: ``params`` are its arguments' specs (see module docstring).

    The function receives checked, resolved arguments and returns the stock plan; its start
    document gets ``adscan_plan``, ``adscan_command`` and (``frames_wrapper``)
    ``frames_per_point`` through ``md``, and it runs inside
    :func:`~adscan.plans.frames.with_frames` with the ``frames`` argument.
    ``checks`` run on the resolved arguments after the per-argument checks.
    """

    def decorate(func: Callable) -> Callable:
        sig = inspect.signature(func)
        missing = set(sig.parameters) ^ set(params)
        if missing:
            raise TypeError(
                f"{func.__name__}: parameters without a spec (or specs without "
                f"a parameter): {sorted(missing)}"
            )
        order = sorted(
            params, key=lambda n: (Param.ORDER[params[n].kind], list(sig.parameters).index(n))
        )

        @functools.wraps(func)
        def plan(*args, **kwargs):
            from adscan.plans.frames import with_frames

            call = plan.__signature__.bind(*args, **kwargs)
            call.apply_defaults()
            given = dict(call.arguments)
            bound: dict[str, Any] = {}
            for name in order:
                bound[name] = params[name].check(name, given[name], bound)
            for check in checks:
                check(bound)
            md = dict(bound.get("md") or {})
            md[ADSCAN_PLAN] = func.__name__
            md[ADSCAN_COMMAND] = command_as_called(func.__name__, plan.__signature__, bound)
            if frames_wrapper:
                md[FRAMES_PER_POINT] = bound["frames"]
            if "md" in params:
                inner = func(**{**bound, "md": md})
            else:
                inner = bpp.inject_md_wrapper(func(**bound), md)
            if not frames_wrapper:
                return (yield from inner)
            dets = bound.get("detectors") or [bound["detector"]]
            points = (
                bound["num"]
                if "num" in bound
                else bound["num1"] * bound["num2"]
                if "num1" in bound
                else None
            )
            return (yield from with_frames(inner, dets, bound["frames"], points=points))

        plan.__signature__ = sig
        plan._adscan_spec = (description, params)
        PLANS[func.__name__] = plan
        _annotate(plan)
        return plan

    return decorate


def _annotate(plan: Callable) -> None:
    """(Re)build the plan's queue-server annotation and signature defaults from SETTINGS."""
    description, params = plan._adscan_spec
    defaults = {"frames": SETTINGS.default_frames, "detectors": SETTINGS.default_detectors}
    if "detector" in params:
        defaults["detector"] = (SETTINGS.default_detectors or ("simdet",))[0]
    sig = plan.__signature__
    plan.__signature__ = sig.replace(
        parameters=[
            p.replace(default=defaults[name])
            if name in defaults and p.default is not inspect.Parameter.empty
            else p
            for name, p in sig.parameters.items()
        ]
    )
    specs = {
        name: (detectors_param() if p.kind == "detectors" else p) for name, p in params.items()
    }
    annotation = {
        "description": description,
        "parameters": {name: p.annotation() for name, p in specs.items()},
    }
    parameter_annotation_decorator(annotation)(plan)  # validates the annotation
    plan._custom_parameter_annotation_ = annotation


def configure_plans(cfg: dict, devices_cfg: dict) -> PlanSettings:
    """Give every plan the configured device names and default frames per point."""
    global SETTINGS
    SETTINGS = replace(
        SETTINGS,
        motors=list(devices_cfg.get("motors") or {}),
        detectors=list(devices_cfg.get("detectors") or {}),
        default_frames=int(cfg["detector"]["frames_per_point"]),
        reconnect_timeout=float(cfg["epics"]["reconnect_timeout"]),
    )
    for plan in PLANS.values():
        _annotate(plan)
    return SETTINGS

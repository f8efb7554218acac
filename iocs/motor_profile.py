"""The motion profile of the simulated motor record: trapezoidal, or triangular when short.

VELO is the plateau speed, ACCL the seconds to reach it (0: infinite acceleration); a speed
that is not a positive finite number makes the move instantaneous.
"""

from __future__ import annotations

import math

__all__ = ["Profile"]


class Profile:
    """A trapezoidal (or triangular) move of ``distance`` from ``start``."""

    def __init__(self, start: float, target: float, velocity: float, accel_time: float):
        self.start = start
        self.target = target
        d = abs(target - start)
        self.sign = 1.0 if target >= start else -1.0
        self.distance = d
        if d == 0.0 or not (velocity > 0.0 and math.isfinite(velocity)):
            self.total = 0.0
            self.ta = self.tc = self.a = self.vp = 0.0
            return
        ta = accel_time if (accel_time > 0.0 and math.isfinite(accel_time)) else 0.0
        if ta == 0.0:
            self.a = math.inf
            self.ta, self.vp, self.tc = 0.0, velocity, d / velocity
        else:
            a = velocity / ta
            if velocity * ta >= d:  # never reaches full speed: triangle
                ta = math.sqrt(d / a)
                self.vp, self.tc = a * ta, 0.0
            else:
                self.vp, self.tc = velocity, (d - velocity * ta) / velocity
            self.a, self.ta = a, ta
        self.total = 2.0 * self.ta + self.tc

    def position(self, t: float) -> tuple[float, bool]:
        """(position, finished) at time ``t`` after the start."""
        if t >= self.total:
            return self.target, True
        if t <= 0.0:
            return self.start, False
        if t < self.ta:
            s = 0.5 * self.a * t * t
        elif t < self.ta + self.tc:
            s = 0.5 * self.vp * self.ta + self.vp * (t - self.ta)
        else:
            r = self.total - t
            s = self.distance - 0.5 * (self.a * r * r if self.ta else 0.0)
        return self.start + self.sign * min(s, self.distance), False

"""The words and colours of the executive dashboards: the one-line verdict on a variant's
repeat-purchase uplift, and the colour each arm keeps on every chart of a page.

Pure functions on plain numbers, no ORM and no Plotly, so that every wording can be tested
against the interval it comes from. A verdict is never stronger than its interval: it says
"raised" or "lowered" only when the whole 95% interval is on one side of zero, and otherwise
says how many more customers it would take to see an effect of ``DETECTABLE_POINTS``.
"""

import math
from collections.abc import Iterable

from django.utils.formats import number_format
from django.utils.translation import gettext as _

from analytics import planning

DETECTABLE_POINTS = 0.03  # the effect "about N more customers would detect": +3 points of repeat rate
HOLDOUT_COLOUR = "#8a8f98"  # grey, on every chart
# Okabe and Ito's colour-blind-safe palette, without its grey and its yellow (too pale on white).
ARM_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000")


def repeat_verdict(
    *,
    observational: bool,
    diff: float | None,
    ci95: tuple[float, float] | None,
    baseline: float | None,
    n_treated: int,
    n_control: int,
) -> str:
    """One line, in plain words, on a variant's repeat-rate uplift against the holdout.

    ``diff`` and ``ci95`` are the uplift in rate points (0.041 is 4.1 points) with Newcombe's
    interval; ``baseline`` is the holdout's repeat rate; ``n_treated``/``n_control`` are the
    mature customers of the variant and of the holdout (the rates' denominators).
    """
    if observational:
        return _("No holdout: observational only.")
    if n_treated == 0 or n_control == 0 or diff is None or ci95 is None or baseline is None:
        return _("Not enough data yet: no customer has completed the window in both arms.")
    low, high = ci95
    if low > 0:
        return _("Raised repeat buyers by %(diff)s points (%(low)s to %(high)s).") % {
            "diff": _points(diff),
            "low": _points(low),
            "high": _points(high),
        }
    if high < 0:
        return _("Lowered repeat buyers by %(diff)s points (%(low)s to %(high)s).") % {
            "diff": _points(-diff),
            "low": _points(-high),
            "high": _points(-low),
        }
    more = more_customers_to_detect(baseline=baseline, n_treated=n_treated, n_control=n_control)
    if more is None:
        return _("No effect detectable yet: between %(low)s and %(high)s points.") % {
            "low": _signed_points(low),
            "high": _signed_points(high),
        }
    if more == 0:
        # Enough customers to see +3 points, and none seen: say what the interval allows, no more.
        return _("No effect detected: between %(low)s and %(high)s points.") % {
            "low": _signed_points(low),
            "high": _signed_points(high),
        }
    return _("No effect detectable yet: about %(more)s more customers per arm would detect +%(points)s points.") % {
        "more": number_format(_two_significant(more), force_grouping=True),
        "points": number_format(round(DETECTABLE_POINTS * 100)),
    }


def more_customers_to_detect(*, baseline: float, n_treated: int, n_control: int) -> int | None:
    """How many more mature customers each arm needs before a rise of ``DETECTABLE_POINTS``
    above ``baseline`` is detected at 80% power and two-sided alpha 0.05 (analytics.planning),
    counted from the smaller arm; 0 when there are enough already. None when the baseline leaves
    no room for the rise (a rate of 0, or one within 3 points of 100%)."""
    target = baseline + DETECTABLE_POINTS
    if not 0 < baseline < 1 or not target < 1:
        return None
    needed = planning.sample_size_per_arm(baseline=baseline, target=target)
    return max(0, needed - min(n_treated, n_control))


def arm_colours(arms: Iterable[str], *, holdouts: Iterable[str] = ("holdout",)) -> dict[str, str]:
    """A colour for each arm (or series) in the order given, the same on every chart of the page;
    holdouts are always grey. The palette repeats past seven arms."""
    grey = set(holdouts)
    colours: dict[str, str] = {}
    others = 0
    for arm in arms:
        if arm in colours:
            continue
        if arm in grey:
            colours[arm] = HOLDOUT_COLOUR
        else:
            colours[arm] = ARM_COLOURS[others % len(ARM_COLOURS)]
            others += 1
    return colours


def _points(rate: float) -> str:
    # Rounded first: number_format truncates (1.7999… would show as 1.7).
    return number_format(round(rate * 100, 1), decimal_pos=1)


def _signed_points(rate: float) -> str:
    """Points with their sign, and a plain 0.0 for what rounds to zero (never "-0.0")."""
    value = round(rate * 100, 1)
    text = number_format(abs(value), decimal_pos=1)
    if value == 0:
        return text
    return f"-{text}" if value < 0 else f"+{text}"


def _two_significant(n: int) -> int:
    """``n`` rounded to two significant figures, the precision "about" promises: 2,941 → 2,900."""
    if n < 100:
        return n
    scale = 10 ** (int(math.log10(n)) - 1)
    return round(n / scale) * scale


def offer_verdicts(offer_metrics) -> list[tuple[str, str]]:
    """``(variant, verdict)`` for each variant of an ``analytics.metrics.OfferMetrics``, from its
    repeat-rate uplift against the holdout; one ``("", "No holdout: …")`` line without one."""
    if offer_metrics.observational:
        return [("", repeat_verdict(observational=True, diff=None, ci95=None, baseline=None, n_treated=0, n_control=0))]
    holdout = next(arm for arm in offer_metrics.arms if arm.is_holdout)
    lines = []
    for entry in offer_metrics.uplift:
        if entry.metric != "repeat_rate":
            continue
        treated = offer_metrics.arm(entry.arm)
        lines.append(
            (
                entry.arm,
                repeat_verdict(
                    observational=False,
                    diff=entry.diff,
                    ci95=entry.ci95,
                    baseline=holdout.itt.repeat_rate,
                    n_treated=treated.itt.mature,
                    n_control=holdout.itt.mature,
                ),
            )
        )
    return lines

"""The model check: the configured Realtime models, and warnings for those near their
shutdown date.
"""

from __future__ import annotations

from datetime import date

from gateway.config import GatewayConfig
from gateway.doctor.results import CheckResult, Status


def configured_models(config: GatewayConfig) -> dict[str, str]:
    """model -> where it is set (`realtime.model`, or the first route overriding it)."""
    models = {config.realtime.model: "realtime.model"}
    for i, route in enumerate(config.routes):
        model = route.realtime.get("model")
        if isinstance(model, str) and model not in models:
            models[model] = f"routes[{i}].realtime.model"
    return models


def model_warnings(config: GatewayConfig, today: date | None = None) -> list[str]:
    """A sentence per configured model whose announced shutdown is within 60 days (the table
    and its source: gateway/realtime/models.py). `run` logs them, `check` reports them."""
    from gateway.realtime.models import shutdown_warning

    today = today or date.today()
    found = []
    for model, key in configured_models(config).items():
        warning = shutdown_warning(model, today)
        if warning is not None:
            found.append(warning.replace("realtime.model", key, 1))
    return found


def check_model(config: GatewayConfig, today: date | None = None) -> list[CheckResult]:
    """Models with an announced shutdown date within 60 days are a warning (issue 10)."""
    from gateway.realtime.models import DEFAULT_MODEL

    warnings = model_warnings(config, today)
    if not warnings:
        models = ", ".join(configured_models(config))
        return [CheckResult("Realtime model", Status.OK, f"{models}: no shutdown announced soon")]
    return [
        CheckResult(
            "Realtime model",
            Status.WARN,
            warning,
            f'set realtime.model = "{DEFAULT_MODEL}" (and the routes\' model overrides)',
        )
        for warning in warnings
    ]

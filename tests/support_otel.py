"""An OpenTelemetry SDK wired to in-memory exporters, installed once per test process.

The API's global tracer and meter providers can be set only once per process, so
:func:`telemetry` installs an SDK ``TracerProvider`` (with an ``InMemorySpanExporter``) and a
``MeterProvider`` (with an ``InMemoryMetricReader``) on first use and hands the same pair back
afterwards; call ``exporter.clear()`` before a test reads spans.
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@functools.cache
def telemetry() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return exporter, reader


def verdict_counts(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    """``{(status, reason): count}`` of the verdict counter so far (cumulative)."""
    counts: dict[tuple[str, str], int] = {}
    data: Any = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != "redpill.verification.verdicts":
                    continue
                for point in metric.data.data_points:
                    a = point.attributes
                    key = (a["redpill.verification.status"], a["redpill.verification.reason"])
                    counts[key] = counts.get(key, 0) + point.value
    return counts

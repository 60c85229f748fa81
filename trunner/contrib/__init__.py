"""Optional integrations, one module each; ``trunner`` itself never imports them.

* `trunner.contrib.middleware`: logging middleware (standard library only).
* `trunner.contrib.prometheus`: a Prometheus collector (extra ``trunner[prometheus]``).
* `trunner.contrib.otel`: OpenTelemetry instruments, histogram hooks and tracing
  middleware (extra ``trunner[otel]``).

The machinery the metric bridges share (a set of runners and schedulers whose
metrics can be read from any thread) lives in ``trunner.contrib._runner_set``.
"""

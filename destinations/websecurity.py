"""URL Filtering's link to Web Security Services: Test Connection (the page's button, ``websecurityconfig test``).

The appliance authenticates to the Web Security Services endpoint with its client
certificate; the test makes that mutual-TLS handshake (``destinations.probe``)
and reports it step by step.
"""

from __future__ import annotations

from appliance.config.sections import Config
from destinations import probe
from destinations.validators import parse_endpoint


def settings(config: Config) -> dict:
    """The ``<url_filtering>`` item of ``config``."""
    [item] = config.get("url_filtering") or [
        {"enabled": False, "endpoint": "", "client_certificate_name": ""}
    ]
    return item


def test_connection(endpoint: str, certificate_name: str, config: Config) -> probe.Report:
    """Test Connection to ``endpoint`` (host:port) presenting ``certificate_name``.

    ``config``: whose certificates and trusted lists apply (the candidate as the administrator's mode
    sees it, ``candidate_levels.seen_candidate``).
    """
    report = probe.Report(f"Test Connection: Web Security Services endpoint {endpoint or '(none)'}")
    return probe.guarded(report, lambda: _test(report, endpoint, certificate_name, config))


def _test(report: probe.Report, endpoint: str, certificate_name: str, config: Config) -> None:
    if not endpoint:
        report.fail("No Web Security Services endpoint is set: give it as host:port")
        report.conclusion = "No Web Security Services endpoint is set; no connection was attempted."
        return
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        report.fail(f"The endpoint {exc}")
        report.conclusion = "The endpoint is not host:port; no connection was attempted."
        return
    if not certificate_name:
        report.warn(
            "No client certificate is chosen: Web Security Services cannot authenticate the appliance"
        )
    result = probe.probe_tls(report, host, port, certificate_name, config)
    if not result.established:
        report.conclusion = "The mutual-TLS handshake with Web Security Services failed."
    elif not result.verified:
        report.conclusion = "The handshake completed, but the endpoint's certificate did not verify."
    elif result.presented:
        report.conclusion = "The mutual-TLS handshake with Web Security Services succeeded."
    else:
        report.conclusion = (
            "The TLS handshake succeeded without a client certificate: "
            "Web Security Services cannot authenticate the appliance."
        )


test_connection.__test__ = False  # a feature's name, not a test for pytest to collect

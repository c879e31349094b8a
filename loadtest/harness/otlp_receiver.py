"""A local OTLP/HTTP trace receiver on a loopback port, in a thread: what a collector would be, for
the tracing benchmark and tests. It answers every export with 200 and keeps the decoded export
requests posted to /v1/traces.

Run as a program, it is a collector to try tracing with, no Docker needed: it prints one line per
span received (trace id, span id, parent, name, duration, attributes).

    python -m loadtest.harness.otlp_receiver [--host 127.0.0.1] [--port 4318]
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 .venv/bin/service   # in another shell
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import sys
import threading

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OtlpReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, on_export=None):
        """`port` 0: a free one. `on_export`: called with each export request as it arrives."""
        self.exports: list[ExportTraceServiceRequest] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    export = ExportTraceServiceRequest.FromString(body)
                    receiver.exports.append(export)
                    if on_export is not None:
                        on_export(export)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # one line per export would flood the output
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.endpoint = f"http://{host}:{self._server.server_port}"  # OTEL_EXPORTER_OTLP_ENDPOINT

    def __enter__(self) -> OtlpReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list:
        """Every span received, in the order received."""
        return [
            span
            for export in self.exports
            for resource_spans in export.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def service_names(self) -> set[str]:
        return {
            attribute.value.string_value
            for export in self.exports
            for resource_spans in export.resource_spans
            for attribute in resource_spans.resource.attributes
            if attribute.key == "service.name"
        }


def span_lines(export: ExportTraceServiceRequest) -> list[str]:
    """One line per span: trace id, span id, parent span id (or -), name, milliseconds, and its
    attributes as key=value."""
    lines = []
    for resource_spans in export.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
                attributes = " ".join(
                    f"{a.key}={getattr(a.value, a.value.WhichOneof('value') or 'string_value')}"
                    for a in span.attributes
                )
                parent = span.parent_span_id.hex() or "-"
                lines.append(
                    f"{span.trace_id.hex()} {span.span_id.hex()} {parent} {span.name!r} "
                    f"{duration_ms:.3f} ms {attributes}".rstrip()
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.harness.otlp_receiver",
        description="An OTLP/HTTP trace receiver that prints every span it receives.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318, help="OTLP/HTTP's port (0: a free one)")
    args = parser.parse_args(argv)

    def show(export: ExportTraceServiceRequest) -> None:
        for line in span_lines(export):
            print(line, flush=True)

    receiver = OtlpReceiver(args.host, args.port, on_export=show)
    print(f"receiving OTLP/HTTP traces at {receiver.endpoint}/v1/traces", flush=True)
    with receiver, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

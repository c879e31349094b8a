"""A local OTLP/HTTP trace receiver on a loopback port, in a thread: what a collector would be, for
the tracing benchmark and tests. It answers every export with 200 and keeps the decoded export
requests posted to /v1/traces."""

from __future__ import annotations

import http.server
import threading

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OtlpReceiver:
    def __init__(self):
        self.exports: list[ExportTraceServiceRequest] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    receiver.exports.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # one line per export would flood the output
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = (
            f"http://127.0.0.1:{self._server.server_port}"  # OTEL_EXPORTER_OTLP_ENDPOINT
        )

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

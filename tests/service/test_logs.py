import io
import json
import logging

from service import logs
from service.server import create_app
from tests.service.support import TestClient, settings


def test_json_log_lines_carry_the_request_id():
    config = logs.log_config("info", "json")
    assert config["formatters"]["default"]["()"] is logs.JsonFormatter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(config["filters"]["request_id"]["()"]())
    logger = logging.getLogger("service.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = logs.request_id.set("abc123")
    try:
        logger.info("loaded %s", "imdb/2")
    finally:
        logs.request_id.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "loaded imdb/2"
    assert line["request_id"] == "abc123"
    assert line["level"] == "info"
    assert line["logger"] == "service.test_logs"


def test_the_access_log_is_off_unless_asked_for(caplog):
    body = {"reviews": ["a fine film"]}
    for enabled in (False, True):
        caplog.clear()
        with (
            TestClient(create_app(settings(access_log=enabled))) as client,
            caplog.at_level(logging.INFO, logger="service"),
        ):
            answer = client.post("/api/imdb", json=body)
            assert answer.status_code == 200
        lines = [r for r in caplog.records if r.name == "service" and "/api/imdb" in r.getMessage()]
        if not enabled:
            assert lines == []
            continue
        (line,) = lines
        assert line.getMessage().startswith("POST /api/imdb 200 imdb/")
        assert line.getMessage().endswith(" ms")

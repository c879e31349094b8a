import io
import json
import logging

from service import logs


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

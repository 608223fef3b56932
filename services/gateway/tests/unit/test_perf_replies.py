"""A service's 2xx reply body reaches the client as the same JSON document, now written by
pydantic-core instead of json.dumps (issue 11): same content type, same document, any text."""
import json

import pytest

from posint_common.contracts.replies import Reply

from gateway.http.endpoints import reply_response

BODIES = [
    {"data": [{"id": 1, "name": "Café ✓ \"x\" \\ \n", "config": {"a": [1, 2.5, None, True]}}]},
    {"data": []},
    {},
]


@pytest.mark.parametrize("body", BODIES, ids=["text", "empty-list", "empty"])
def test_a_2xx_reply_body_is_the_same_json_document(body):
    response = reply_response(Reply(status=200, body=body, headers={"X-Extra": "1"}), "rid", {"Link": "<x>; rel=\"next\""})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert (response.headers["X-Extra"], response.headers["Link"]) == ("1", "<x>; rel=\"next\"")
    assert json.loads(response.body.decode("utf-8")) == body


def test_a_created_reply_keeps_its_status_and_a_problem_stays_problem_json():
    assert reply_response(Reply(status=201, body={"id": 7}), "rid").status == 201
    problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No such integration."}
    response = reply_response(Reply.model_validate({"status": 404, "problem": problem}), "rid")
    assert (response.status, response.content_type) == (404, "application/problem+json")
    assert json.loads(response.body)["request_id"] == "rid"

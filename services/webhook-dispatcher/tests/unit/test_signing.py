"""Signing is the standardwebhooks package's: the specification's vector, and our headers carry it."""
from datetime import datetime, timezone

from standardwebhooks import Webhook

from webhook_dispatcher.adapters.sender import headers, message

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
AT = datetime.fromtimestamp(1614265330, timezone.utc)
BODY = '{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specification_vector():
    assert Webhook(SECRET).sign(MSG_ID, AT, BODY) == EXPECTED


def test_our_headers_sign_the_exact_body():
    sent = headers(SECRET, MSG_ID, AT, BODY)
    assert sent["webhook-id"] == MSG_ID and sent["webhook-timestamp"] == "1614265330"
    assert sent["webhook-signature"] == EXPECTED


def test_the_body_is_type_timestamp_data():
    assert message("webhook.test", {"webhook_id": 3}, AT) == (
        '{"type":"webhook.test","timestamp":"2021-02-25T15:02:10Z","data":{"webhook_id":3}}')

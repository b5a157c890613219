def test_endpoint_url_for_logs_masks_userinfo_password_and_key_parameters() -> None:
    from gateway.realtime.client import Endpoint

    endpoint = Endpoint.custom("wss://u:pw@h/v1/realtime?model=m&api-key=abc&token=z")
    assert endpoint.redacted() == "wss://u:***@h/v1/realtime?model=m&api-key=***&token=***"
    assert "sk-x" not in repr(Endpoint.openai("sk-x", "gpt-realtime"))

"""The control API token the test harnesses give the gateways they start (issue 9: the API
requires a token by default), and the request headers that carry it."""

from __future__ import annotations

TEST_CONTROL_TOKEN = "test-control-token-0123456789abcdef"
# The variable the harnesses set for `python -m gateway run`; their config names it in
# control.token_env.
TEST_CONTROL_TOKEN_ENV = "SRG_TEST_CONTROL_TOKEN"


def auth_header(token: str = TEST_CONTROL_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""A local, protocol-faithful stand-in for OpenAI's GPT-Live API (primary WebSocket,
`/v1/live/sessions`), served by the same `Simulator` process as the Realtime stand-in
(gateway/realtime/simulator/server.py). See gpt-live-protocol.md section 12 for what it must do.

One module per job:

    schema.py       client-event validation (openai.types.live as tables): validate_client_event
"""

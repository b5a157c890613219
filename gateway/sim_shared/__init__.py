"""Pieces both local voice-service simulators use (Realtime GA: gateway/realtime/simulator/;
GPT-Live: gateway/live/simulator/): G.711 audio helpers (`audio.py`), the energy VAD on audio
time (`vad.py`), the client-event validation combinators (`checks.py`) and reading options
from plain data (`options.py`). Imports only
gateway/media/g711.py from the rest of the product."""

"""The call tests reuse the Realtime simulator fixtures, with their strict schema checks."""

from tests.realtime.conftest import expect_invalid, sim, sim_factory  # noqa: F401

"""The old name of probe.checks.context, still imported by the helper checks (udp_stream,
circumvention, helper_transfer) while they are rewritten to record observations; remove it
with them."""

from probe.checks.context import Context, Skip

__all__ = ["Context", "Skip"]

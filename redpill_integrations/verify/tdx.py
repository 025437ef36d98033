"""TDX quotes: parsing, DCAP verification through dcap-qvl, report_data binding."""

from __future__ import annotations


def quote_fmspc(quote: bytes) -> str:
    """The FMSPC (lower-case hex) of the PCK certificate embedded in ``quote``; the wire layer uses it
    to fetch collateral. Raises ``MalformedEvidence``."""
    raise NotImplementedError

"""``redpill``: a thin command line over the library.

Parse argv, call the library, print, and map outcomes to exit codes scripts can rely on:

====  ==========================================================
code  meaning
====  ==========================================================
0     verified (or: the command succeeded)
1     failed: the evidence contradicts the claim
2     usage error (bad arguments)
3     unverifiable: the verification could not be completed
4     error: configuration, network or receipt problem (one line)
5     internal error (a bug: one line, no traceback unless
      ``REDPILL_DEBUG=1``)
====  ==========================================================

Settings come from ``REDPILL_API_KEY``, ``REDPILL_BASE_URL``, ``REDPILL_TRUST_FILE`` and
``REDPILL_RECEIPTS`` (the receipt store: a path or a ``sqlite:///``/``postgresql://`` URL), or the
matching flags. The API key is never printed,
and a trust file never decides where it is sent (``_destination.py``). Everything shown on the
terminal goes through ``display.printable`` (control characters escaped).

The package: this module (``main`` and the parser), ``_common`` (exit codes, ``UsageError``, JSON
printing, time parsing), ``_destination`` (base URL and key), ``commands`` (one function per
command), ``display`` (renderings), ``demo`` (``redpill demo``). ``commands`` is imported lazily so
that ``--help`` stays fast; no module of the package imports names from this one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from redpill_integrations._version import __version__
from redpill_integrations.cli._common import EXIT_CODES, UsageError
from redpill_integrations.cli.display import printable
from redpill_integrations.errors import RedpillError
from redpill_integrations.results import Status

__all__ = ["EXIT_CODES", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our usage code and a one-line message."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_CODES["usage"], f"redpill: error: {message}\n")


def _add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", default=None, help="Redpill base URL (env REDPILL_BASE_URL)")
    p.add_argument(
        "--trust",
        metavar="FILE",
        default=None,
        help="non-production trust file, e.g. the emulator's (env REDPILL_TRUST_FILE)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="PATH|URL",
        default=None,
        help="receipt store: a path, sqlite:///path or postgresql://... (env REDPILL_RECEIPTS)",
    )


def _add_listing_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", choices=[s.value for s in Status], default=None)
    p.add_argument("--model", default=None, help="only receipts of this model")
    p.add_argument("--protocol", default=None, help="only this verdict protocol (e.g. legacy)")
    p.add_argument("--provider", default=None, help="only this upstream provider")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="redpill", description="Verified provenance for Redpill TEE models.")
    parser.add_argument("--version", action="version", version=f"redpill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    chat = sub.add_parser("chat", help="one verified chat call")
    chat.add_argument("prompt")
    chat.add_argument("--model", required=True)
    chat.add_argument("--stream", action="store_true")
    _add_connection_args(chat)
    _add_store_arg(chat)

    attest = sub.add_parser(
        "attest", help="verify the gateway's attestation now (ACI), or a model's (legacy)"
    )
    attest.add_argument(
        "--model", default=None, help="the model to attest (legacy gateways: required)"
    )
    attest.add_argument(
        "--signer",
        default=None,
        help="legacy: also require this signing address/key to be attested",
    )
    _add_connection_args(attest)

    models = sub.add_parser("models", help="list the gateway's models and whether each is TEE")
    _add_connection_args(models)

    verify = sub.add_parser("verify", help="re-verify a stored receipt offline")
    verify.add_argument("receipt", help="a receipt file (JSON) or a receipt id in the store")
    verify.add_argument("--at", default=None, help="ISO-8601 time to verify at (default: original)")
    verify.add_argument(
        "--policy",
        metavar="FILE",
        default=None,
        help="JSON verification policy to apply (default: the default policy; never the receipt's)",
    )
    _add_connection_args(verify)
    _add_store_arg(verify)

    receipts = sub.add_parser("receipts", help="list, show, export or re-verify stored receipts")
    rsub = receipts.add_subparsers(dest="receipts_command", required=True, parser_class=_Parser)
    rlist = rsub.add_parser("list")
    rlist.add_argument("--limit", type=int, default=20)
    _add_listing_filters(rlist)
    rlist.add_argument("--json", action="store_true")
    _add_store_arg(rlist)
    rshow = rsub.add_parser("show")
    rshow.add_argument("receipt_id")
    rshow.add_argument("--json", action="store_true")
    _add_store_arg(rshow)
    rexport = rsub.add_parser("export")
    _add_listing_filters(rexport)
    rexport.add_argument("--out", metavar="FILE", default="-", help="JSON lines file (default -)")
    _add_store_arg(rexport)
    rverify = rsub.add_parser("verify", help="re-verify one stored receipt, or --all, offline")
    rverify.add_argument("receipt_id", nargs="?", default=None)
    rverify.add_argument("--all", action="store_true", help="every receipt in the store")
    rverify.add_argument(
        "--at", default=None, help="ISO-8601 time to verify at (default: original)"
    )
    rverify.add_argument(
        "--policy",
        metavar="FILE",
        default=None,
        help="JSON verification policy to apply (default: the default policy; never the receipt's)",
    )
    rverify.add_argument(
        "--trust",
        metavar="FILE",
        default=None,
        help="non-production trust file, e.g. the emulator's (env REDPILL_TRUST_FILE)",
    )
    rverify.add_argument("--json", action="store_true", help="machine-readable output")
    _add_store_arg(rverify)

    emulator = sub.add_parser("emulator", help="run the local Redpill emulator", add_help=False)
    emulator.add_argument("emulator_args", nargs=argparse.REMAINDER)

    demo = sub.add_parser("demo", help="the end-to-end demo (emulator unless REDPILL_API_KEY)")
    demo.add_argument("--store", metavar="PATH", default=None)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    from redpill_integrations.cli import commands

    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "chat": commands.cmd_chat,
        "attest": commands.cmd_attest,
        "models": commands.cmd_models,
        "verify": commands.cmd_verify,
        "receipts": commands.cmd_receipts,
        "emulator": commands.cmd_emulator,
        "demo": commands.cmd_demo,
    }
    return handlers[args.command](args)


def _scrub(message: str) -> str:
    """One printable line: the API key masked, control characters escaped."""
    key = os.environ.get("REDPILL_API_KEY")
    if key:
        message = message.replace(key, "***")
    return printable(message.strip())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        # The emulator parses its own flags (argparse.REMAINDER would refuse leading options).
        argv = ["emulator", "--", *argv[1:]]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"redpill: error: {_scrub(str(exc))}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except RedpillError as exc:
        print(f"redpill: {type(exc).__name__}: {_scrub(str(exc))}", file=sys.stderr)
        return EXIT_CODES["error"]
    except KeyboardInterrupt:
        print("redpill: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("REDPILL_DEBUG") == "1":
            raise
        print(
            f"redpill: internal error ({type(exc).__name__}): {_scrub(str(exc))}"
            " (set REDPILL_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_CODES["internal"]

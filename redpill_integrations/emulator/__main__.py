"""``python -m redpill_integrations.emulator`` (and ``redpill emulator``): run in the foreground."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="redpill emulator",
        description="Run a local Redpill-compatible server with a TEST PKI (NOT a real TEE).",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8750, help="0 picks a free port")
    p.add_argument(
        "--protocol",
        choices=["aci", "legacy"],
        default="aci",
        help="aci (default): the ACI gateway api.redpill.ai runs; legacy: per-node signatures",
    )
    p.add_argument("--trust-out", metavar="FILE", help="write the trust file (SPEC §5) here")
    p.add_argument("--signing-algo", choices=["ecdsa", "ed25519"], default="ecdsa")
    p.add_argument("--report-shape", choices=["flat", "two-layer"], default="flat")
    p.add_argument("--signed-text-parts", type=int, choices=[2, 3], default=2)
    p.add_argument("--tls-bound", action="store_true")
    p.add_argument("--tcb-status", default="UpToDate")
    p.add_argument("--debug-td", action="store_true")
    p.add_argument("--signature-ttl", type=float, default=1200.0)
    p.add_argument("--signature-delay", type=float, default=0.0)
    p.add_argument("--gpu-count", type=int, default=1)
    p.add_argument("--seed", default=None, help="deterministic keys (default: random)")
    lat = p.add_argument_group("latency (seconds, default 0)")
    lat.add_argument("--network-rtt", type=float, default=0.0, help="added to every exchange")
    lat.add_argument("--time-to-first-token", type=float, default=0.0)
    lat.add_argument("--time-per-token", type=float, default=0.0)
    f = p.add_argument_group("faults (global)")
    for name in (
        "signature-not-ready",
        "wrong-node",
        "rate-limited",
        "server-error",
        "error-code-envelope",
        "attestation-reset",
    ):
        f.add_argument(f"--{name}", type=int, default=0, metavar="N")
    f.add_argument("--retry-after", type=float, default=1.0)
    f.add_argument("--tamper-response", choices=["alter", "inject", "drop", "reorder"])
    for name in (
        "reset-mid-stream",
        "truncate-stream",
        "foreign-signer",
        "sign-other-request",
        "ignore-nonce",
        "compose-mismatch",
        "rtmr-mismatch",
        "gpu-wrong-nonce",
        "gpu-unknown-key",
        "unknown-report-shape",
    ):
        f.add_argument(f"--{name}", action="store_true")
    a = p.add_argument_group("ACI faults (global; see docs/aci-emulator.md)")
    a.add_argument("--receipt-not-ready", type=int, default=0, metavar="N")
    a.add_argument("--receipt-body-hash", choices=["request", "response"])
    a.add_argument("--receipt-mismatch", choices=["chat_id", "endpoint", "model", "receipt_id"])
    for name in ACI_SWITCHES:
        a.add_argument(f"--{name.replace('_', '-')}", action="store_true")
    return p


#: ACI fault switches taken from the command line (each a boolean field of ``Faults``)
ACI_SWITCHES = (
    "receipt_unauthorized",
    "receipt_bad_signature",
    "receipt_foreign_key",
    "stale_served_at",
    "upstream_failed",
    "upstream_not_required",
    "session_id_mismatch",
    "missing_receipt_id",
    "keyset_digest_mismatch",
    "quote_other_statement",
    "keyset_expired",
    "custody_unknown_root",
)


def main(argv: Sequence[str] | None = None) -> int:
    from redpill_integrations.emulator.faults import Faults
    from redpill_integrations.emulator.server import Emulator
    from redpill_integrations.errors import ConfigurationError

    args = build_parser().parse_args(argv)
    try:
        emu = Emulator(
            host=args.host,
            port=args.port,
            signing_algo=args.signing_algo,
            report_shape=args.report_shape,
            signed_text_parts=args.signed_text_parts,
            tls_bound=args.tls_bound,
            tcb_status=args.tcb_status,
            debug_td=args.debug_td,
            signature_ttl=args.signature_ttl,
            signature_delay=args.signature_delay,
            gpu_count=args.gpu_count,
            seed=args.seed,
            protocol=args.protocol,
            network_rtt=args.network_rtt,
            time_to_first_token=args.time_to_first_token,
            time_per_token=args.time_per_token,
        )
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    emu.set_faults(
        Faults(
            signature_not_ready=args.signature_not_ready,
            wrong_node=args.wrong_node,
            rate_limited=args.rate_limited,
            retry_after=args.retry_after,
            server_error=args.server_error,
            error_code_envelope=args.error_code_envelope,
            attestation_reset=args.attestation_reset,
            tamper_response=args.tamper_response,
            reset_mid_stream=args.reset_mid_stream,
            truncate_stream=args.truncate_stream,
            foreign_signer=args.foreign_signer,
            sign_other_request=args.sign_other_request,
            ignore_nonce=args.ignore_nonce,
            compose_mismatch=args.compose_mismatch,
            rtmr_mismatch=args.rtmr_mismatch,
            gpu_wrong_nonce=args.gpu_wrong_nonce,
            gpu_unknown_key=args.gpu_unknown_key,
            unknown_report_shape=args.unknown_report_shape,
            receipt_not_ready=args.receipt_not_ready,
            receipt_body_hash=args.receipt_body_hash,
            receipt_mismatch=args.receipt_mismatch,
            **{name: getattr(args, name) for name in ACI_SWITCHES},
        )
    )
    if args.trust_out:
        emu.write_trust_file(args.trust_out)
    print(emu.base_url, flush=True)
    print("Redpill EMULATOR with a test PKI: NOT a real TEE.", file=sys.stderr, flush=True)
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

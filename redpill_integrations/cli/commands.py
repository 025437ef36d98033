"""The CLI's commands: each takes parsed arguments, calls the library and returns an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redpill_integrations.cli._common import (
    EXIT_CODES,
    UsageError,
    exit_code_for,
    parse_time,
    print_json,
)
from redpill_integrations.cli._destination import Destination, resolve_destination
from redpill_integrations.cli.display import (
    printable,
    render_receipt_rows,
    render_trust_chain,
)
from redpill_integrations.cli.display_aci import (
    chain_from_gateway,
    render_gateway_chain,
    render_verdict,
)
from redpill_integrations.errors import ConfigurationError, ReceiptError, TransportError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import (
    Receipt,
    ReceiptStore,
    far_from,
    policy_diff,
    reverify,
    reverify_time,
)
from redpill_integrations.results import VerificationResult

if TYPE_CHECKING:
    from redpill_integrations.wire import RedpillVerifier


def _trust(args: argparse.Namespace) -> TrustAnchors:
    if getattr(args, "trust", None):
        return TrustAnchors.from_file(args.trust)
    return TrustAnchors.from_env()


def _destination(args: argparse.Namespace, trust: TrustAnchors) -> Destination:
    """Where to send requests (see ``cli/_destination.py``); says so when the trust file's
    ``base_url`` was passed over."""
    dest = resolve_destination(
        base_url_flag=getattr(args, "base_url", None), trust=trust, env=os.environ
    )
    if dest.ignored_trust_base_url is not None:
        print(
            f"redpill: not using the trust file's base_url {printable(dest.ignored_trust_base_url)}"
            f" (only a loopback emulator without REDPILL_API_KEY is taken from a trust file);"
            f" calling {printable(dest.base_url)}. Pass --base-url to choose.",
            file=sys.stderr,
        )
    return dest


def _store(args: argparse.Namespace) -> ReceiptStore:
    """``--store`` (a path or a URL) or ``$REDPILL_RECEIPTS`` or the default SQLite store."""
    return ReceiptStore.open(args.store) if getattr(args, "store", None) else ReceiptStore.default()


def _policy(args: argparse.Namespace) -> VerificationPolicy:
    """``--policy FILE`` (a JSON ``VerificationPolicy``, unknown fields refused), else the default
    policy; never a receipt's own (a receipt's policy is a claim of the receipt)."""
    path = getattr(args, "policy", None)
    return VerificationPolicy.from_file(path) if path else VerificationPolicy()


def _progress(step: str) -> None:
    print(f"  … {printable(step)}", file=sys.stderr, flush=True)


def _os_image_names(trust: TrustAnchors) -> dict[str, str]:
    """The names the trust anchors give the OS images they accept (for display only)."""
    return {h: image.name for h, image in trust.os_images.items() if image.name}


def cmd_chat(args: argparse.Namespace) -> int:
    import httpx
    import openai

    from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

    trust = _trust(args)
    dest = _destination(args, trust)
    if not dest.api_key:
        raise ConfigurationError("REDPILL_API_KEY is not set")
    store = _store(args)
    # ACI: also fetch and check the upstream session, which names the provider and its claims
    policy = VerificationPolicy(check_session=True)
    with RedpillVerifier(
        base_url=dest.base_url,
        api_key=dest.api_key,
        trust=trust,
        receipt_store=store,
        policy=policy,
    ) as verifier:
        client = openai.OpenAI(
            base_url=dest.base_url,
            api_key=dest.api_key,
            http_client=verifier.http_client(),
            max_retries=1,
        )
        tag = verifier.recorder.new_tag()
        messages: Any = [{"role": "user", "content": args.prompt}]
        # as strict mode does: an ACI gateway refuses rather than forward to an unverified upstream
        extra_body: Any = verifier.request_extras("strict") or None
        try:
            if args.stream:
                parts: list[str] = []
                stream = client.chat.completions.create(
                    model=args.model,
                    messages=messages,
                    stream=True,
                    extra_headers={CAPTURE_HEADER: tag},
                    extra_body=extra_body,
                )
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        piece = chunk.choices[0].delta.content
                        parts.append(piece)
                        if not args.json:
                            print(printable(piece, multiline=True), end="", flush=True)
                if not args.json:
                    print()
                content = "".join(parts)
            else:
                completion = client.chat.completions.create(
                    model=args.model,
                    messages=messages,
                    extra_headers={CAPTURE_HEADER: tag},
                    extra_body=extra_body,
                )
                content = completion.choices[0].message.content or ""
                if not args.json:
                    print(printable(content, multiline=True))
        except (openai.APIError, httpx.HTTPError) as exc:
            # The call failed (network, HTTP error, unreadable answer, a stream that broke off).
            # If a response arrived, it still gets its one receipt (which holds the bytes); the
            # command reports a transport error either way.
            exchange = verifier.recorder.take(tag)
            kept = ""
            if exchange is not None:
                failed = verifier.verify(exchange)
                kept = f"; receipt {failed.receipt_id} ({failed.status.value})"
            raise TransportError(f"chat call failed: {type(exc).__name__}{kept}") from exc
        result = verifier.verify(verifier.recorder.take(tag))
    if args.json:
        print_json({"content": content, "verification": result.to_dict()})
    else:
        print()
        print(render_verdict(result, trust_chain=True, os_image_names=_os_image_names(trust)))
    return exit_code_for(result)


def cmd_attest(args: argparse.Namespace) -> int:
    """ACI gateway: its identity (quote and TCB, event log, compose hash, app id, OS image, KMS
    custody, keyset and its expiry, source commit). Legacy gateway: ``--model``'s attestation."""
    from redpill_integrations.wire import RedpillVerifier

    trust = _trust(args)
    dest = _destination(args, trust)
    with RedpillVerifier(base_url=dest.base_url, api_key=dest.api_key, trust=trust) as verifier:
        gateway = verifier.gateway()
        if gateway.protocol == "aci":
            return _attest_gateway(args, verifier, dest.base_url, trust)
        if not args.model:
            raise UsageError("--model is required: the gateway speaks the legacy protocol")
        if not args.json:
            print(
                f"attesting {printable(args.model)} at {printable(dest.base_url)} (legacy)",
                file=sys.stderr,
            )
        outcome = verifier.attest(
            args.model, signer=args.signer, progress=None if args.json else _progress
        )
    verdict = outcome.verdict
    # Without --signer there is no signing key to look for: the report's own key is what the
    # attestation binds, so "signer_attested" is not required (it stays not_checked).
    required = [c for c in _ATTESTATION_CHECKS if args.signer or c != "signer_attested"]
    result = VerificationResult.build(
        checks=verdict.checks,
        reasons=verdict.reasons,
        required=required,
        model=args.model,
        attestation=verdict.summary,
        signer=verdict.summary.signing_address if verdict.summary else None,
        detail=verdict.detail,
    )
    if args.json:
        print_json({"protocol": "legacy", "model": args.model, "attestation": result.to_dict()})
    else:
        print(render_trust_chain(verdict.summary, verdict.checks))
        print(
            f"\nattestation {result.status.value.upper()}"
            + (f" ({', '.join(r.value for r in result.reasons)})" if result.reasons else "")
        )
    return exit_code_for(result)


_ATTESTATION_CHECKS = (
    "signer_attested",
    "report_data",
    "nonce",
    "quote",
    "tcb",
    "event_log",
    "compose",
    "measurements",
    "gpu",
)


#: The checks a gateway identity must pass (the per-exchange ones need a response).
_GATEWAY_CHECKS = (
    "keyset",
    "report_data",
    "nonce",
    "quote",
    "tcb",
    "event_log",
    "compose",
    "measurements",
    "key_custody",
)


def _attest_gateway(
    args: argparse.Namespace, verifier: RedpillVerifier, base_url: str, trust: TrustAnchors
) -> int:
    if args.signer:
        raise UsageError("--signer is for legacy gateways; an ACI gateway signs with its keyset")
    if not args.json:
        print(f"attesting the ACI gateway at {printable(base_url)}", file=sys.stderr)
    model = verifier.model_info(args.model) if args.model else None
    outcome = verifier.attest_gateway(progress=None if args.json else _progress)
    verdict = outcome.verdict
    reasons = list(verdict.reasons) if verdict is not None else []
    if outcome.fetch_reason is not None:
        reasons.insert(0, outcome.fetch_reason)
    result = VerificationResult.build(
        checks=verdict.checks if verdict is not None else {},
        reasons=reasons,
        required=_GATEWAY_CHECKS,
        protocol="aci",
        detail=(verdict.detail if verdict is not None else None) or outcome.detail or None,
    )
    chain = chain_from_gateway(verdict, os_image_names=_os_image_names(trust)) if verdict else None
    if args.json:
        data: dict[str, Any] = {
            "protocol": "aci",
            "status": result.status.value,
            "reasons": [r.value for r in result.reasons],
            "detail": result.detail,
            "attested_at": outcome.attested_at.isoformat(),
            "gateway": chain.to_dict() if chain else None,
        }
        if model is not None:
            data["model"] = {"id": model.id, "is_tee": model.is_tee}
        print_json(data)
        return exit_code_for(result)
    print(render_gateway_chain(chain) if chain else "gateway attestation: not available")
    if model is not None:
        tee = {True: "yes", False: "NO", None: "not listed"}[model.is_tee]
        print(f"\nmodel {printable(model.id)}: served from a TEE (gateway's listing): {tee}")
    head = f"\ngateway attestation {result.status.value.upper()}"
    if result.reasons:
        head += f" ({', '.join(r.value for r in result.reasons)})"
    print(head)
    if result.detail and result.reasons:
        print(f"detail: {printable(result.detail)}")
    return exit_code_for(result)


def cmd_models(args: argparse.Namespace) -> int:
    """The models ``/v1/models`` lists, with ``is_tee`` as the gateway says it."""
    from redpill_integrations.wire import RedpillVerifier

    trust = _trust(args)
    dest = _destination(args, trust)
    if not dest.api_key:
        raise ConfigurationError("REDPILL_API_KEY is not set")
    with RedpillVerifier(base_url=dest.base_url, api_key=dest.api_key, trust=trust) as verifier:
        gateway = verifier.gateway()
        models = verifier.models()
    if gateway.problem is not None:
        raise TransportError(f"could not reach the gateway: {gateway.problem}")
    if args.json:
        print_json(
            {
                "protocol": gateway.protocol,
                "keyset_digest": gateway.keyset_digest,
                "models": [{"id": m.id, "is_tee": m.is_tee} for m in models],
            }
        )
        return EXIT_CODES["verified"]
    print(f"{printable(dest.base_url)} ({gateway.protocol} gateway)")
    if not models:
        print("no models listed")
    width = max((len(printable(m.id)) for m in models), default=5)
    for m in models:
        tee = {True: "TEE", False: "not TEE", None: "-"}[m.is_tee]
        print(f"  {printable(m.id):<{width}}  {tee}")
    return EXIT_CODES["verified"]


def _load_receipt(args: argparse.Namespace) -> Receipt:
    path = Path(args.receipt)
    if path.is_file():
        return Receipt.from_json(path.read_bytes())
    receipt = _store(args).get(args.receipt)
    if receipt is None:
        raise ReceiptError(f"no receipt {args.receipt!r} in the store and no such file")
    return receipt


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-verify under the caller's policy and trust; the receipt's policy is only shown."""
    at = parse_time(args.at) if args.at else None
    receipt = _load_receipt(args)
    trust = _trust(args)
    policy = _policy(args)
    result = reverify(receipt, at=at, trust=trust, policy=policy)
    when = reverify_time(receipt, at)
    far = far_from(when, datetime.now(UTC)) if when.tzinfo else None
    diff = policy_diff(receipt, policy)
    original = receipt.result
    same = result.status == original.status and result.reasons == original.reasons
    if args.json:
        print_json(
            {
                "receipt_id": receipt.receipt_id,
                "verification": result.to_dict(),
                "original_status": original.status.value,
                "matches_original": same,
                "at": when.isoformat(),
                "at_source": "--at" if at else "receipt",
                "at_far_from_now_seconds": far.total_seconds() if far else None,
                "policy_source": args.policy or "default",
                "receipt_policy_diff": {
                    k: {"receipt": r, "applied": a} for k, (r, a) in diff.items()
                },
            }
        )
    else:
        print(
            f"re-verified receipt {printable(receipt.receipt_id)} offline"
            + (f" at {at.isoformat()}" if at else " at its original time")
            + (f" under policy {printable(args.policy)}" if args.policy else " (default policy)")
        )
        if far is not None:
            source = "the time given by --at" if at else "the receipt's own (unproven) time"
            print(
                f"NOTE: verifying at {printable(when.isoformat())}, {_days(far)} from now: "
                f"{source}; evidence is judged as of then"
            )
        for name, (recorded, applied) in diff.items():
            print(
                f"NOTE: the receipt recorded policy {printable(name)}={printable(recorded)}; "
                f"applied {printable(applied)} (pass --policy to choose)"
            )
        print(render_verdict(result, trust_chain=True, os_image_names=_os_image_names(trust)))
        if not same:
            print(f"NOTE: the original verdict was {original.status.value}")
    return exit_code_for(result)


def _days(delta: timedelta) -> str:
    days = abs(delta).total_seconds() / 86400
    return f"{days:.1f} days {'ahead' if delta.total_seconds() > 0 else 'back'}"


def cmd_receipts(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.receipts_command == "list":
        if args.limit <= 0:
            raise UsageError("--limit must be positive")
        receipts = store.list(limit=args.limit, **_filters(args))
        rows = [
            {
                "receipt_id": r.receipt_id,
                "created_at": r.created_at.isoformat(timespec="seconds"),
                "status": r.result.status.value,
                "model": r.result.model,
                "chat_id": r.result.chat_id,
            }
            for r in receipts
        ]
        if args.json:
            print_json(rows)
        else:
            print(render_receipt_rows(rows))
        return EXIT_CODES["verified"]
    if args.receipts_command == "show":
        receipt = store.get(args.receipt_id)
        if receipt is None:
            raise ReceiptError(f"no receipt {args.receipt_id!r}")
        if args.json:
            print_json(json.loads(receipt.to_json()))
        else:
            print(render_verdict(receipt.result, trust_chain=True))
        return EXIT_CODES["verified"]
    if args.receipts_command == "verify":
        return _verify_stored(args, store)
    # export
    if args.out == "-":
        count = store.export(sys.stdout, **_filters(args))
    else:
        with open(args.out, "w", encoding="utf-8") as out:
            count = store.export(out, **_filters(args))
    print(f"exported {count} receipt(s)", file=sys.stderr)
    return EXIT_CODES["verified"]


def _filters(args: argparse.Namespace) -> dict[str, str | None]:
    return {k: getattr(args, k, None) for k in ("status", "model", "protocol", "provider")}


def _verify_stored(args: argparse.Namespace, store: ReceiptStore) -> int:
    """``receipts verify ID`` (as ``verify ID``) or ``receipts verify --all``: every receipt
    re-verified offline with the caller's trust and policy; 0 when every verdict is unchanged,
    1 when any changed or any row is unreadable."""
    from redpill_integrations.stores.audit import ProgressBar, reverify_store

    if args.all == (args.receipt_id is not None):
        raise UsageError("give a receipt id or --all")
    if not args.all:
        args.receipt = args.receipt_id
        return cmd_verify(args)
    at = parse_time(args.at) if args.at else None
    summary = reverify_store(
        store, trust=_trust(args), policy=_policy(args), at=at, progress=ProgressBar(sys.stderr)
    )
    if args.json:
        print_json(
            {
                "total": summary.total,
                "statuses": summary.statuses,
                "changed": [
                    {"receipt_id": c.receipt_id, "was": c.was, "now": c.now, "reasons": c.reasons}
                    for c in summary.changed
                ],
                "unreadable": [{"receipt_id": r, "error": m} for r, m in summary.unreadable],
                "clean": summary.clean,
            }
        )
    else:
        print(printable(summary.render(), multiline=True))
    return EXIT_CODES["verified"] if summary.clean else EXIT_CODES["failed"]


def cmd_emulator(args: argparse.Namespace) -> int:
    from redpill_integrations.emulator.__main__ import main as emulator_main

    rest = list(args.emulator_args)
    return int(emulator_main(rest[1:] if rest[:1] == ["--"] else rest) or 0)


def cmd_demo(args: argparse.Namespace) -> int:
    from redpill_integrations.cli.demo import run_demo

    return run_demo(store_path=args.store)


__all__ = [
    "cmd_attest",
    "cmd_chat",
    "cmd_demo",
    "cmd_emulator",
    "cmd_models",
    "cmd_receipts",
    "cmd_verify",
]

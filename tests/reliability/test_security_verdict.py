"""Security review V2 and V8: what a legacy ``verified`` proves about the code and the model.

V2. Compose hash, app id and OS-image hash are RTMR3 events the guest extends itself, so an
attacker who owns any TD on genuine hardware can claim them. Here the emulator's TD plays that
attacker: the trust anchors' registry says the genuine image (the one whose ``os-image-hash`` the
TD claims) has *another* MRTD/RTMR1/RTMR2. Before the fix the TD was ``verified`` under the
default policy and under the README's pins (compose hash, app id, OS-image hash); now it fails
``MEASUREMENT_NOT_ALLOWED`` until MRTD, RTMR1 and RTMR2 are pinned (by the policy, or by a
registry entry that matches them).

V8. The gateway reports the request hash (an ``assumptions`` entry says so), and a response naming
another model than the one requested fails ``MODEL_MISMATCH``; the served model is exposed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.errors import VerificationFailed
from redpill_integrations.policy import OsImage, TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import Receipt
from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier
from tests.reliability._hostile import Hostile
from tests.reliability.conftest import build, call

MODEL = "phala/gpt-oss-120b"
#: the MRTD of a genuine dstack image (data/aci_os_images.json, dstack-0.5.9)
GENUINE_MRTD = (
    "f06dfda6dce1cf904d4e2bab1dc370634cf95cefa2ceb2de2e"
    "ee127c9382698090d7a4a13e14c536ec6c9c3c8fa87077"
)


def _exchange(emulator: Emulator, trust: TrustAnchors, policy: VerificationPolicy) -> Receipt:
    v = RedpillVerifier(
        base_url=emulator.base_url, api_key=emulator.api_key, trust=trust, policy=policy
    )
    with v:
        sdk = openai.OpenAI(
            base_url=emulator.base_url, api_key=emulator.api_key, http_client=v.http_client()
        )
        tag = v.recorder.new_tag()
        sdk.chat.completions.create(
            model=MODEL,
            extra_headers={CAPTURE_HEADER: tag},
            messages=[{"role": "user", "content": "wire the funds?"}],
        )
        return v.verify_exchange(v.recorder.take(tag))


def _identity(emulator: Emulator) -> dict[str, str]:
    node = emulator.state.node
    m = node.measurements
    return {
        "os_image_hash": node.os_image_hash,
        "compose_hash": node.compose_hash,
        "app_id": node.app_id,
        "mrtd": m.mr_td.hex(),
        "rtmr0": m.rtmrs[0].hex(),
        "rtmr1": m.rtmrs[1].hex(),
        "rtmr2": m.rtmrs[2].hex(),
    }


def _claims_genuine_image(emulator: Emulator) -> TrustAnchors:
    """Trust whose registry lists the hash the TD claims, with the genuine image's measurements."""
    ident = _identity(emulator)
    genuine = OsImage(name="dstack-genuine", mrtd=GENUINE_MRTD, rtmr1="11" * 48, rtmr2="22" * 48)
    return dataclasses.replace(emulator.trust, os_images={ident["os_image_hash"]: genuine})


README_PINS = {
    "allowed_compose_hashes": "compose_hash",
    "allowed_app_ids": "app_id",
    "allowed_os_image_hashes": "os_image_hash",
}


def _readme_pins(emulator: Emulator) -> dict[str, frozenset[str]]:
    ident = _identity(emulator)
    return {name: frozenset({ident[key]}) for name, key in README_PINS.items()}


def test_an_attacker_td_fails_under_the_default_policy(emulator: Emulator) -> None:
    result = _exchange(emulator, _claims_genuine_image(emulator), VerificationPolicy()).result
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.MEASUREMENT_NOT_ALLOWED,))
    assert result.checks["measurements"] == "fail"
    assert result.code_identity == {"kind": "unpinned", "matched": []}
    assert result.detail is not None and "allowed_mrtds" in result.detail


def test_an_attacker_td_fails_under_the_readme_pins(emulator: Emulator) -> None:
    """Compose hash, app id and OS-image hash all match the TD's own claims: still not pinned."""
    policy = VerificationPolicy(**_readme_pins(emulator))
    result = _exchange(emulator, _claims_genuine_image(emulator), policy).result
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.MEASUREMENT_NOT_ALLOWED,))
    assert result.code_identity == {
        "kind": "unpinned",
        "matched": ["compose_hash", "app_id", "os_image_hash"],
    }


def test_an_unregistered_td_fails(emulator: Emulator) -> None:
    trust = dataclasses.replace(emulator.trust, os_images={})
    result = _exchange(emulator, trust, VerificationPolicy()).result
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.MEASUREMENT_NOT_ALLOWED,))


def test_pinning_mrtd_alone_does_not_pin_the_code(emulator: Emulator) -> None:
    """The firmware (MRTD) is public: an attacker boots it with a kernel of their own."""
    trust = dataclasses.replace(emulator.trust, os_images={})
    policy = VerificationPolicy(allowed_mrtds=frozenset({_identity(emulator)["mrtd"]}))
    result = _exchange(emulator, trust, policy).result
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.MEASUREMENT_NOT_ALLOWED,))
    assert result.code_identity == {"kind": "unpinned", "matched": ["mrtd"]}


def test_the_registered_image_verifies(emulator: Emulator) -> None:
    result = _exchange(emulator, emulator.trust, VerificationPolicy()).result
    assert (result.status, result.reasons) == (Status.VERIFIED, ())
    assert result.code_identity == {
        "kind": "registry",
        "matched": ["os_image"],
        "os_image": "redpill-emulator-os",
    }


def test_policy_pins_of_mrtd_rtmr1_rtmr2_verify_without_a_registry(emulator: Emulator) -> None:
    ident = _identity(emulator)
    policy = VerificationPolicy(
        allowed_mrtds=frozenset({ident["mrtd"]}),
        allowed_rtmr1=frozenset({ident["rtmr1"]}),
        allowed_rtmr2=frozenset({ident["rtmr2"]}),
        **_readme_pins(emulator),
    )
    trust = dataclasses.replace(emulator.trust, os_images={})
    result = _exchange(emulator, trust, policy).result
    assert (result.status, result.reasons) == (Status.VERIFIED, ())
    assert result.code_identity == {
        "kind": "pinned",
        "matched": ["compose_hash", "app_id", "os_image_hash", "mrtd", "rtmr1", "rtmr2"],
    }


def test_opting_out_of_the_code_pin_says_unpinned(emulator: Emulator) -> None:
    trust = dataclasses.replace(emulator.trust, os_images={})
    result = _exchange(emulator, trust, VerificationPolicy(require_code_pin=False)).result
    assert (result.status, result.reasons) == (Status.VERIFIED, ())
    assert result.code_identity == {"kind": "unpinned", "matched": []}


def test_the_emulators_trust_file_carries_its_image(emulator: Emulator, tmp_path: Path) -> None:
    loaded = TrustAnchors.from_file(emulator.write_trust_file(tmp_path / "trust.json"))
    ident = _identity(emulator)
    image = loaded.os_images[ident["os_image_hash"]]
    assert (image.mrtd, image.rtmr1, image.rtmr2) == (ident["mrtd"], ident["rtmr1"], ident["rtmr2"])


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_strict_adapters_refuse_an_unpinned_td_and_say_how_to_pin(
    emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    rig = build(
        kind,
        base_url=emulator.base_url,
        trust=dataclasses.replace(emulator.trust, os_images={}),
        store_path=tmp_path / "r.sqlite3",
    )
    out = call(rig, "hi")
    assert isinstance(out.raised, VerificationFailed)
    assert out.raised.result.reasons == (Reason.MEASUREMENT_NOT_ALLOWED,)
    assert "allowed_mrtds" in str(out.raised) and "os_images" in str(out.raised)


# ---- V8 ------------------------------------------------------------------------------------


def test_the_3_part_signed_texts_model_is_the_served_model(emulator_factory: Any) -> None:
    """The proxy's own name may differ from the alias (the protocol says so): shown, accepted."""
    emulator = emulator_factory(protocol="legacy", signed_text_parts=3)
    result = _exchange(emulator, emulator.trust, VerificationPolicy()).result
    assert (result.status, result.reasons) == (Status.VERIFIED, ())
    assert result.served_model == emulator.state.models[MODEL].served_name == "openai/gpt-oss-120b"


def test_a_legacy_verdict_states_its_assumption_and_served_model(emulator: Emulator) -> None:
    result = _exchange(emulator, emulator.trust, VerificationPolicy()).result
    assert result.assumptions == ("request_hash_reported_by_gateway",)
    assert result.served_model == MODEL  # 2-part text: the response body's own model
    assert result.to_dict()["assumptions"] == ["request_hash_reported_by_gateway"]
    again = type(result).from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result


def _answer_from(model: str) -> Any:
    def make(req: dict[str, Any]) -> tuple[str, bytes, bytes]:
        chat_id = "chatcmpl-swapped-" + model.rsplit("/", 1)[-1]
        body = {
            "id": chat_id,
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "cheap answer"},
                    "finish_reason": "stop",
                }
            ],
        }
        raw = json.dumps(body).encode()
        return chat_id, raw, raw

    return make


@pytest.mark.parametrize(
    ("served", "status", "reasons"),
    [
        ("phala/qwen-2.5-7b-instruct", "failed", ["MODEL_MISMATCH"]),
        # the gateway's rewrite of the alias (a real Redpill response names this model)
        ("openai/GPT-OSS-120B", "verified", []),
    ],
)
def test_the_model_the_signed_response_names_is_compared(
    emulator: Emulator, tmp_path: Path, served: str, status: str, reasons: list[str]
) -> None:
    """The gateway routes the request to another model; its signed answer names that model."""
    hostile = Hostile(emulator).start()
    try:
        hostile.route = lambda req: (
            hostile.mint_chat(_answer_from(served))
            if req.path.endswith("/chat/completions")
            else None
        )
        rig = build(
            "lc", base_url=hostile.base_url, trust=emulator.trust, store_path=tmp_path / "r"
        )
        out = call(rig, "hi")
    finally:
        hostile.stop()
    assert (out.verdict["status"], out.verdict["reasons"]) == (status, reasons)
    assert out.verdict["served_model"] == served
    assert (out.raised is not None) == (status == "failed")


def test_the_cli_shows_code_identity_served_model_and_assumption(emulator: Emulator) -> None:
    from redpill_integrations.cli.display import render_result

    text = render_result(_exchange(emulator, emulator.trust, VerificationPolicy()).result)
    assert "code        registry (matched: os_image)" in text
    assert f"served by   {MODEL}" in text
    assert "assumes     request_hash_reported_by_gateway" in text

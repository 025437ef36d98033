"""The package's public names are a contract: this test pins them."""

import subprocess
import sys

import redpill_integrations


def test_root_all_is_pinned() -> None:
    assert sorted(redpill_integrations.__all__) == sorted(
        [
            "ConfigurationError",
            "Reason",
            "Receipt",
            "ReceiptStore",
            "RedpillError",
            "RedpillVerifier",
            "ResponseUnreadable",
            "Status",
            "TrustAnchors",
            "VerificationFailed",
            "VerificationPolicy",
            "VerificationResult",
            "__version__",
            "reverify",
        ]
    )
    for name in redpill_integrations.__all__:
        assert hasattr(redpill_integrations, name)


def test_root_imports_no_framework() -> None:
    code = (
        "import sys, redpill_integrations;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('langchain_core','langchain_openai',"
        "'llama_index')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

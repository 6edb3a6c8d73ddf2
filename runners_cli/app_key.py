"""Import a GitHub App's private key into its KMS key, so that it never exists anywhere else.

The procedure is KMS's for asymmetric key material
(https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-conceptual.html and
the step pages it links):

1. the KMS key was created with ``Origin=EXTERNAL``, ``KeySpec=RSA_2048``,
   ``KeyUsage=SIGN_VERIFY`` (the stack does it; state ``PendingImport``);
2. ``GetParametersForImport`` with ``WrappingAlgorithm=RSA_AES_KEY_WRAP_SHA_256`` (an RSA
   private key can only be wrapped with an RSA_AES algorithm) and an ``RSA_4096`` wrapping
   key: a wrapping public key and an import token, valid 24 hours;
3. the private key as PKCS #8 DER (only the private key: KMS derives the public one) is
   wrapped with a fresh 256-bit AES key by AES key wrap with padding (RFC 5649), the AES key
   is encrypted with the wrapping public key by RSAES-OAEP with SHA-256 (MGF1 SHA-256), and
   the two are concatenated, AES key first;
4. ``ImportKeyMaterial`` with ``ExpirationModel=KEY_MATERIAL_DOES_NOT_EXPIRE``.

Asymmetric key material can be imported again only if it is the same, so a key that already
holds material is compared (by its public key) instead. The PEM is read into memory only;
nothing here writes it, logs it, or sends it anywhere but (wrapped) to KMS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runners_cli.errors import CliError

WRAPPING_ALGORITHM = "RSA_AES_KEY_WRAP_SHA_256"
WRAPPING_KEY_SPEC = "RSA_4096"
#: What a GitHub App private key is (GitHub generates 2048-bit RSA keys) and what the
#: Lambda's kms:Sign needs.
KEY_SPEC = "RSA_2048"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise CliError(
            "importing the App's key needs the 'cryptography' package: "
            "pip install 'fargate-gha-runners[cli]'"
        ) from None
    return serialization


def load_private_key(path: Path) -> Any:
    """The App's RSA private key from its ``.pem`` (as GitHub downloads it: PKCS #1 PEM)."""
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise CliError(
            f"{path} is not an unencrypted PEM private key (the .pem GitHub downloads)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != 2048:
        raise CliError(f"{path} is not a 2048-bit RSA key, which is what GitHub App keys are")
    return key


def public_key_der(private_key: Any) -> bytes:
    """The DER SubjectPublicKeyInfo, the form ``kms:GetPublicKey`` returns."""
    serialization = _crypto()
    return bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def wrap_key_material(private_key: Any, wrapping_public_key_der: bytes) -> bytes:
    """``RSA_AES_KEY_WRAP_SHA_256`` of the key's PKCS #8 DER (step 3 above)."""
    serialization = _crypto()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    wrapping_key = serialization.load_der_public_key(wrapping_public_key_der)
    if not isinstance(wrapping_key, rsa.RSAPublicKey):
        raise CliError("KMS returned a wrapping key that is not RSA")
    material = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    aes_key = os.urandom(32)
    encrypted_aes_key = wrapping_key.encrypt(
        aes_key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return bytes(encrypted_aes_key) + aes_key_wrap_with_padding(aes_key, material)


def import_private_key(kms: Any, key_arn: str, pem: Path) -> str:
    """Import the App key in ``pem`` into ``key_arn``: ``imported`` or ``unchanged``."""
    private_key = load_private_key(pem)
    metadata = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
    spec = metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec")
    if (spec, metadata.get("KeyUsage"), metadata.get("Origin")) != (
        KEY_SPEC,
        "SIGN_VERIFY",
        "EXTERNAL",
    ):
        raise CliError(
            f"the KMS key {key_arn} is {spec} {metadata.get('KeyUsage')} with origin "
            f"{metadata.get('Origin')}; the App key needs {KEY_SPEC} SIGN_VERIFY EXTERNAL "
            "(the stack creates one when github_app_key_arn is not set)"
        )
    state = metadata.get("KeyState")
    if state != "PendingImport":
        held = bytes(kms.get_public_key(KeyId=key_arn)["PublicKey"])
        if held != public_key_der(private_key):
            raise CliError(
                f"the KMS key {key_arn} already holds another private key ({state}); KMS "
                "accepts only the same material again: put the ARN of a new key in "
                "github_app_key_arn (or remove it to let the stack create one) and deploy"
            )
        return "unchanged"
    parameters = kms.get_parameters_for_import(
        KeyId=key_arn, WrappingAlgorithm=WRAPPING_ALGORITHM, WrappingKeySpec=WRAPPING_KEY_SPEC
    )
    kms.import_key_material(
        KeyId=key_arn,
        ImportToken=parameters["ImportToken"],
        EncryptedKeyMaterial=wrap_key_material(private_key, bytes(parameters["PublicKey"])),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    return "imported"

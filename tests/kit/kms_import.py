"""What moto's KMS lacks: importing asymmetric key material, as KMS documents it.

moto 5.2 has no ``GetParametersForImport`` / ``ImportKeyMaterial``, and its keys with
``Origin=EXTERNAL`` are born ``Enabled`` with material moto made. ``kms_import`` adds, to the
same moto backend the CLI talks to through real boto3:

* ``CreateKey`` with ``Origin=EXTERNAL``: the key has no material and is ``PendingImport``
  (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-create-cmk.html);
* ``Sign`` / ``GetPublicKey`` on a key that is not ``Enabled``: ``KMSInvalidStateException``;
* ``GetParametersForImport``: only for ``EXTERNAL`` keys; an RSA wrapping key pair of the
  asked spec, the public half (DER) and an import token;
* ``ImportKeyMaterial``: the token must be one it issued; ``RSA_AES_KEY_WRAP_SHA_256`` is
  undone (RSAES-OAEP SHA-256 of the AES key, then RFC 5649 AES key unwrap of the PKCS #8 DER
  private key); material that does not unwrap, is not the key's spec, or differs from
  material imported before is refused; on success the key is ``Enabled`` and signs with the
  imported private key.

Then a JWT that moto signs verifies with the App's own public key: the proof that the import
put exactly the App key into KMS.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding
from moto.core.exceptions import JsonRESTError
from moto.kms.models import KmsBackend
from moto.kms.responses import KmsResponse


def _error(code: str, message: str) -> JsonRESTError:
    error = JsonRESTError(code, message)
    error.code = 400
    return error


def _wrapping_algorithm(name: str) -> Any:
    if name != "RSA_AES_KEY_WRAP_SHA_256":
        raise _error(
            "UnsupportedOperationException",
            f"{name} cannot wrap RSA private key material (this double models "
            "RSA_AES_KEY_WRAP_SHA_256 only)",
        )
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@cache
def _wrapping_key(bits: int) -> rsa.RSAPrivateKey:
    """One wrapping key pair per size for the whole test process.

    KMS makes a new pair for each ``GetParametersForImport``; here the import token alone
    binds a wrapped material to its key (the token is new each time), and making a 4096-bit
    pair per call was an eighth of the CLI tests' CPU time.
    """
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@pytest.fixture
def kms_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[bytes, Any]]:
    """Patch moto's KMS for the test; yields the issued import tokens."""
    issued: dict[bytes, tuple[str, Any, str]] = {}
    original_create = KmsBackend.create_key
    original_sign = KmsBackend.sign
    original_public = KmsBackend.get_public_key

    def create_key(self: KmsBackend, *args: Any, **kwargs: Any) -> Any:
        key = original_create(self, *args, **kwargs)
        if key.origin == "EXTERNAL":
            key.key_state = "PendingImport"
            key.enabled = False
            key.private_key = None
        return key

    def usable(self: KmsBackend, key_id: str) -> None:
        key = self.describe_key(key_id)
        if key.key_state != "Enabled":
            raise _error("KMSInvalidStateException", f"{key.arn} is {key.key_state}")

    def sign(self: KmsBackend, key_id: str, *args: Any, **kwargs: Any) -> Any:
        usable(self, key_id)
        return original_sign(self, key_id, *args, **kwargs)

    def get_public_key(self: KmsBackend, key_id: str) -> Any:
        usable(self, key_id)
        return original_public(self, key_id)

    def get_parameters_for_import(response: KmsResponse) -> str:
        key = response.kms_backend.describe_key(response._get_param("KeyId"))
        if key.origin != "EXTERNAL":
            raise _error("UnsupportedOperationException", f"{key.arn} origin is {key.origin}")
        _wrapping_algorithm(response._get_param("WrappingAlgorithm"))
        bits = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}[
            response._get_param("WrappingKeySpec")
        ]
        wrapping = _wrapping_key(bits)
        token = secrets.token_bytes(64)
        issued[token] = (key.id, wrapping, response._get_param("WrappingAlgorithm"))
        public = wrapping.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return json.dumps(
            {
                "KeyId": key.arn,
                "ImportToken": base64.b64encode(token).decode(),
                "PublicKey": base64.b64encode(public).decode(),
                "ParametersValidTo": 1e10,
            }
        )

    def import_key_material(response: KmsResponse) -> str:
        key = response.kms_backend.describe_key(response._get_param("KeyId"))
        token = base64.b64decode(response._get_param("ImportToken"))
        if token not in issued or issued[token][0] != key.id:
            raise _error("InvalidImportTokenException", "the import token is not for this key")
        _, wrapping, algorithm = issued[token]
        blob = base64.b64decode(response._get_param("EncryptedKeyMaterial"))
        split = wrapping.key_size // 8
        try:
            aes_key = wrapping.decrypt(blob[:split], _wrapping_algorithm(algorithm))
            der = aes_key_unwrap_with_padding(aes_key, blob[split:])
            private = serialization.load_der_private_key(der, password=None)
        except (ValueError, InvalidUnwrap):
            raise _error("InvalidCiphertextException", "the key material does not unwrap") from None
        if not isinstance(private, rsa.RSAPrivateKey) or f"RSA_{private.key_size}" != key.key_spec:
            raise _error("IncorrectKeyMaterialException", f"not {key.key_spec} key material")
        if key.private_key is not None and key.private_key.public_key() != _public(private):
            raise _error("IncorrectKeyMaterialException", "different from the imported material")
        from moto.kms.utils import RSAPrivateKey

        material = RSAPrivateKey.__new__(RSAPrivateKey)
        material.key_size = private.key_size
        material.private_key = private
        key.private_key = material
        key.key_state = "Enabled"
        key.enabled = True
        return json.dumps({})

    monkeypatch.setattr(KmsBackend, "create_key", create_key)
    monkeypatch.setattr(KmsBackend, "sign", sign)
    monkeypatch.setattr(KmsBackend, "get_public_key", get_public_key)
    monkeypatch.setattr(
        KmsResponse, "get_parameters_for_import", get_parameters_for_import, raising=False
    )
    monkeypatch.setattr(KmsResponse, "import_key_material", import_key_material, raising=False)
    yield issued


def _public(private: rsa.RSAPrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

"""A local Entra ID stand-in over HTTPS: OpenID metadata, JWKS with x5c certificates, RS256 tokens.

Tests can take it down (``stop``) and bring it back on the same port (``start``), slow it down,
rotate its signing keys, and count how often it was asked for metadata and keys (``fetches``, the
answers; ``log``, every request as it arrives, before any delay). Like Entra ID,
metadata asked for with ``?appid=X`` points at ``keys?appid=X``, which serves that application's own
signing keys when it has some (``app_keys``), else the tenant's.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _certificate(key: rsa.RSAPrivateKey, name: str, san_ip: str | None = None) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    if san_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]), critical=False
        )
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


class SigningKey:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self.cert = _certificate(self.private, f"signing-{self.kid}")

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode().rstrip("=")

        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": b64(numbers.n),
            "e": b64(numbers.e),
            "x5c": [base64.b64encode(der).decode()],
        }


class FakeIdP:
    def __init__(self, tmp: Path, tenant: str = "11111111-2222-3333-4444-555555555555", client_id: str = "api-client") -> None:
        self.tenant, self.client_id = tenant, client_id
        self.keys = [SigningKey()]
        self.app_keys: dict[str, list[SigningKey]] = {}  # appid -> the application's own signing keys
        self.delay = 0.0
        self.failing = False  # answer 503 to everything (still counted: the provider "sees" the fetch)
        self.fail_next = 0  # answer 503 to this many more requests
        self.fetches = {"metadata": 0, "keys": 0}
        self.log: list[tuple[float, str]] = []  # (time.monotonic(), path) of every request, as it arrives
        self._lock = threading.Lock()
        tls_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tls_cert = _certificate(tls_key, "127.0.0.1", san_ip="127.0.0.1")
        self.ca_bundle = tmp / "idp-ca.pem"
        self.ca_bundle.write_bytes(tls_cert.public_bytes(serialization.Encoding.PEM))
        key_file = tmp / "idp-key.pem"
        key_file.write_bytes(
            tls_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(self.ca_bundle, key_file)
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"https://{self.server}/{self.tenant}/v2.0"

    # -- life --------------------------------------------------------------------------------
    def start(self) -> FakeIdP:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with idp._lock:
                    idp.log.append((time.monotonic(), urlsplit(self.path).path))
                if idp.delay:
                    time.sleep(idp.delay)
                with idp._lock:
                    hiccup = idp.fail_next > 0
                    idp.fail_next -= hiccup
                if idp.failing or hiccup:
                    with idp._lock:
                        idp.fetches["failed"] = idp.fetches.get("failed", 0) + 1
                    self.send_error(503)
                    return
                url = urlsplit(self.path)
                appid = parse_qs(url.query).get("appid", [None])[0]
                if url.path == f"/{idp.tenant}/v2.0/.well-known/openid-configuration":
                    kind, body = "metadata", idp.metadata(appid)
                elif url.path == f"/{idp.tenant}/discovery/v2.0/keys":
                    kind, body = "keys", {"keys": [k.jwk() for k in idp.app_keys.get(appid or "", idp.keys)]}
                else:
                    self.send_error(404)
                    return
                with idp._lock:
                    idp.fetches[kind] += 1
                data = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: connections to the port are refused until ``start()`` (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def rotate(self, keep_old: bool = False) -> SigningKey:
        new = SigningKey()
        self.keys = [new, *self.keys] if keep_old else [new]
        return new

    def hits(self, kind: str = "") -> int:
        """Requests that arrived (answered or not, slow or not) whose path ends with ``kind``."""
        with self._lock:
            return sum(1 for _, path in self.log if path.endswith(kind))

    # -- content -----------------------------------------------------------------------------
    def metadata(self, appid: str | None = None) -> dict[str, Any]:
        base = f"https://{self.server}/{self.tenant}"
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{base}/discovery/v2.0/keys" + (f"?appid={quote(appid)}" if appid else ""),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "msgraph_host": "graph.microsoft.com",
        }

    def token(self, key: SigningKey | None = None, ttl: int = 600, **claims: Any) -> str:
        """An RS256 access token for this tenant; ``claims`` override the defaults."""
        key = key or self.keys[0]
        now = int(time.time())
        body = {"iss": self.issuer, "aud": self.client_id, "tid": self.tenant, "iat": now, "nbf": now, "exp": now + ttl,
                "sub": "subject-1", "upn": "alice@example.com", "oid": "oid-1", **claims}  # fmt: skip
        return jwt.encode(body, key.private, algorithm="RS256", headers={"kid": key.kid})

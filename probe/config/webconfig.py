"""The listener's web config: Prometheus exporter-toolkit's file (`run --web.config.file FILE`).

The same file operators already keep for every other exporter: `tls_server_config` (the
listener's certificate and key, TLS versions, client certificates), `basic_auth_users` (user
names and bcrypt hashes: no password in clear anywhere) and `http_server_config` (extra response
headers). It is read with the config's bounded YAML path and refused whole at load, with file,
line and key, for what msgreach could not honour (a setting it would otherwise ignore would
weaken the listener silently): `cipher_suites`, `curve_preferences`, `client_allowed_sans`,
inline PEM (`cert`, `key`, `client_ca`), `rate_limit`, and the two client-certificate policies
that accept an unverified certificate. Relative paths are relative to the file, as in the toolkit.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Annotated, Literal, cast

from probe.config.errors import ConfigError, Problem
from probe.config.files import check_ca_bundle, check_cert_chain
from probe.config.loader import load_model
from probe.validation import AfterValidator, BaseModel, Field, field_validator, model_validator

TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The toolkit's policies msgreach can keep: Python's ssl verifies every certificate it asks for.
CLIENT_AUTH: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")

# The headers the toolkit lets a web config add, and the values it accepts where it restricts them.
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}

# A bcrypt hash as htpasswd -B, Go's and Python's bcrypt write it: $2a$, $2b$ or $2y$, cost, 53 characters.
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def _bcrypt_hash(value: str) -> str:
    if not _BCRYPT.fullmatch(value):
        raise ValueError(
            "not a bcrypt hash ($2y$10$ and 53 characters): store the hash, never the password "
            "(`htpasswd -nBC 10 \"\" | tr -d ':\\n'`, or python3 -c 'import bcrypt; print(bcrypt.hashpw(input().encode(), bcrypt.gensalt()).decode())')"
        )
    return value


def _user_name(value: str) -> str:
    if not value or ":" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a user name is not empty and holds no ':' and no control character")
    return value


BcryptHash = Annotated[str, AfterValidator(_bcrypt_hash)]
UserName = Annotated[str, AfterValidator(_user_name)]


class _WebModel(BaseModel):
    """Frozen, unknown keys refused, strict types (probe.validation)."""


def _unsupported(value: object, why: str) -> None:
    if value is not None:
        raise ValueError(f"not supported by msgreach's listener: {why}")


class WebTLS(_WebModel):
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion = "TLS13"
    # Read only to be refused with a reason (a setting ignored would weaken the listener unseen).
    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    client_allowed_sans: list[str] | None = None
    cipher_suites: list[str] | None = None
    prefer_server_cipher_suites: bool | None = None
    curve_preferences: list[str] | None = None

    @field_validator("cert", "key", "client_ca")
    @classmethod
    def _no_inline_pem(cls, value: str | None) -> None:
        _unsupported(value, "inline PEM: name the files (`cert_file`, `key_file`, `client_ca_file`)")

    @field_validator("client_allowed_sans")
    @classmethod
    def _no_sans(cls, value: list[str] | None) -> None:
        _unsupported(value, "give the clients certificates from a CA of their own (`client_ca_file`)")

    @field_validator("cipher_suites", "curve_preferences", "prefer_server_cipher_suites")
    @classmethod
    def _no_cipher_choice(cls, value: object) -> None:
        _unsupported(value, "OpenSSL's defaults for the TLS versions allowed apply")

    @field_validator("client_auth_type")
    @classmethod
    def _verified_clients(cls, value: str) -> str:
        if value in _UNVERIFIED_CLIENT_AUTH:
            raise ValueError(f"{value} accepts certificates nobody verified: use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file")
        if value not in CLIENT_AUTH:
            raise ValueError(f"must be one of {', '.join(CLIENT_AUTH)}, not {value!r}")
        return value

    @field_validator("client_ca_file")
    @classmethod
    def _a_bundle(cls, value: Path | None) -> Path | None:
        return None if value is None else check_ca_bundle(value)

    @model_validator(mode="after")
    def _consistent(self) -> WebTLS:
        if self.client_auth_type != "NoClientCert" and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is above max_version {self.max_version}")
        check_cert_chain(self.cert_file, self.key_file)
        return self

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.configure(context)
        return context

    def configure(self, context: ssl.SSLContext) -> None:
        """Set `context` (new or serving: a reload changes what the next handshakes use)."""
        context.minimum_version = TLS_VERSIONS[self.min_version]
        context.maximum_version = TLS_VERSIONS[self.max_version]
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        context.verify_mode = CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=str(self.client_ca_file))


class WebHTTP(_WebModel):
    http2: bool = True  # accepted for the toolkit's sake: msgreach speaks HTTP/1.1 only
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _known_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in HEADERS:
                raise ValueError(f"header {name!r} cannot be set here; these can: {', '.join(HEADERS)}")
            allowed = HEADERS[name]
            if allowed is not None and value.lower() not in allowed:
                raise ValueError(f"header {name}: {value!r} is not one of {', '.join(allowed)}")
            if any(ord(c) < 32 or ord(c) == 127 for c in value) or not value.isascii():
                raise ValueError(f"header {name}: its value must be printable ASCII on one line")
        return headers


class WebConfig(_WebModel):
    tls_server_config: WebTLS | None = None
    http_server_config: WebHTTP = Field(default_factory=WebHTTP)
    basic_auth_users: dict[UserName, BcryptHash] = Field(default_factory=dict)
    rate_limit: dict[str, object] | None = None

    @field_validator("rate_limit")
    @classmethod
    def _no_rate_limit(cls, value: object) -> None:
        _unsupported(value, "a scrape every few seconds needs none; put a reverse proxy in front for more")


def load_web_config(path: str | Path) -> WebConfig:
    """The validated web config of `path`; ConfigError names file, line and key of each problem."""
    problems: list[Problem] = []
    web = load_model(WebConfig, Path(path), problems)
    if web is None:
        raise ConfigError(problems)
    return cast(WebConfig, web)

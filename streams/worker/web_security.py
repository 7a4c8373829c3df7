"""TLS, basic authentication and response headers for everything the worker serves.

The web configuration file is the Prometheus exporter toolkit's (its ``web-configuration.md``):
the format every exporter reads, so that a stock Prometheus ``scrape_config`` with ``basic_auth``
and ``tls_config`` scrapes a ccmon worker as it scrapes node_exporter. ccmon reads it once at
start (the toolkit rereads it per request; a worker is restarted to pick up a new certificate)
and refuses the keys it cannot honour rather than ignoring them, so that a file never promises a
protection ccmon does not give (docs/security.md).

The headers and the ``Server`` header are set on every response, configured or not: the pages
are the only HTML, and a CSP that allows nothing but the worker itself costs nothing elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.config import ConfigError, Settings

__all__ = ["SERVER", "Guard", "WebConfig", "inline_hashes", "load_web_config", "page_csp", "web_guard"]

log = logging.getLogger(__name__)

#: the ``Server`` header: the product, never its or its libraries' versions
SERVER = "ccmon"

#: exporter toolkit names → Python's TLS versions
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
#: client_auth_type → verify mode; the two that ask for a certificate without verifying it have no
#: equivalent in Python's ssl module (the toolkit itself calls them insecure)
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_ca",
    "client_auth_type",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
}
#: keys of the toolkit's format that ccmon refuses, with the reason
UNSUPPORTED = {
    "cert": "inline certificates are not supported: use cert_file",
    "key": "inline keys are not supported: use key_file",
    "client_allowed_sans": "client_allowed_sans is not supported",
    "cipher_suites": "cipher_suites (Go's names) is not supported: Python's defaults apply",
    "curve_preferences": "curve_preferences is not supported",
    "rate_limit": "rate_limit is not supported: put a reverse proxy in front to rate-limit",
}
#: the response headers ``http_server_config.headers`` may set (the toolkit's list, and ccmon's own)
HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
    "Referrer-Policy",
)
BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}\Z")
#: successful verifications kept (bcrypt costs ~70 ms at cost 10, on purpose); a few users scrape
VERIFIED_MAX = 64


@dataclass(frozen=True)
class WebConfig:
    """The parsed file: the TLS context (None: plain HTTP), the users and their bcrypt hashes
    (empty: no authentication), and the headers it sets (an empty value removes one)."""

    path: str
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


def _fail(path: str, problem: str) -> ConfigError:
    return ConfigError(f"CCMON_WEB_CONFIG_FILE {path}: {problem}")


def _mapping(path: str, doc: Any, where: str) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not all(isinstance(k, str) for k in doc):
        raise _fail(path, f"{where} must be a mapping")
    return doc


def _check_keys(path: str, doc: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    for key in doc:
        if key in UNSUPPORTED:
            raise _fail(path, f"{where}{key}: {UNSUPPORTED[key]}")
        if key not in allowed:
            raise _fail(path, f"unknown key {where}{key} (supported: {', '.join(sorted(allowed))})")


def _string(path: str, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, f"{where} must be a non-empty string")
    return value


def _tls(path: str, doc: dict[str, Any]) -> ssl.SSLContext:
    where = "tls_server_config."
    _check_keys(path, doc, TLS_KEYS, where)
    if "cert_file" not in doc or "key_file" not in doc:
        raise _fail(path, "tls_server_config needs both cert_file and key_file")
    base = Path(path).parent  # relative file names are the config file's neighbours
    cert, key = (str(base / _string(path, doc[k], where + k)) for k in ("cert_file", "key_file"))
    auth = doc.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise _fail(
            path,
            f"{where}client_auth_type {auth!r} is not supported: use one of {', '.join(CLIENT_AUTH)}",
        )
    ca_file = doc.get("client_ca_file")
    ca_text = doc.get("client_ca")
    if ca_file is not None and ca_text is not None:
        raise _fail(path, f"{where}client_ca and client_ca_file are exclusive")
    has_ca = ca_file is not None or ca_text is not None
    if has_ca and auth == "NoClientCert":
        raise _fail(path, f"{where}client CAs are configured but client_auth_type is NoClientCert")
    if auth != "NoClientCert" and not has_ca:
        raise _fail(path, f"{where}client_auth_type {auth} needs client_ca_file")
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        raw = doc.get(name, default)
        if raw not in TLS_VERSIONS:
            raise _fail(path, f"{where}{name} {raw!r}: use one of {', '.join(TLS_VERSIONS)}")
        versions[name] = TLS_VERSIONS[raw]
    if versions["min_version"] > versions["max_version"]:
        raise _fail(path, f"{where}min_version is above max_version")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version, ctx.maximum_version = versions["min_version"], versions["max_version"]
        ctx.load_cert_chain(cert, key)
        if ca_file is not None:
            ctx.load_verify_locations(cafile=str(base / _string(path, ca_file, where + "client_ca_file")))
        elif ca_text is not None:
            ctx.load_verify_locations(cadata=_string(path, ca_text, where + "client_ca"))
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _fail(path, f"cannot load the TLS files ({reason})") from None
    ctx.verify_mode = CLIENT_AUTH[auth]
    prefer = doc.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise _fail(path, f"{where}prefer_server_cipher_suites must be true or false")
    if prefer:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _users(path: str, doc: dict[str, Any]) -> dict[str, bytes]:
    users = {}
    for user, hashed in doc.items():
        if not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed):
            raise _fail(path, f"basic_auth_users.{user}: not a bcrypt hash (e.g. htpasswd -nBC 10 '')")
        users[user] = hashed.encode()
    return users


def _headers(path: str, doc: dict[str, Any]) -> dict[str, str]:
    where = "http_server_config."
    _check_keys(path, doc, ("headers", "http2"), where)
    if not isinstance(doc.get("http2", True), bool):
        raise _fail(path, f"{where}http2 must be true or false")
    headers = _mapping(path, doc.get("headers"), where + "headers")
    out = {}
    for name, value in headers.items():
        canonical = next((h for h in HEADERS if h.lower() == name.lower()), None)
        if canonical is None:
            raise _fail(path, f"{where}headers.{name}: ccmon sets only {', '.join(HEADERS)}")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise _fail(path, f"{where}headers.{name} must be a one-line string")
        out[canonical] = value
    return out


def load_web_config(path: str) -> WebConfig:
    """Parse the file; a ConfigError (exit 2) with one line naming the file and the key for
    anything wrong, before the worker connects to anything."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _fail(path, f"cannot read it ({reason})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise _fail(path, f"not valid YAML{at}: {getattr(exc, 'problem', None) or 'syntax error'}") from None
    doc = _mapping(path, doc, "the file")
    _check_keys(path, doc, ("tls_server_config", "basic_auth_users", "http_server_config"), "")
    tls = _mapping(path, doc.get("tls_server_config"), "tls_server_config")
    return WebConfig(
        path=path,
        ssl_context=_tls(path, tls) if tls else None,
        users=_users(path, _mapping(path, doc.get("basic_auth_users"), "basic_auth_users")),
        headers=_headers(path, _mapping(path, doc.get("http_server_config"), "http_server_config")),
    )


INLINE = re.compile(rb"<(script|style)>(.*?)</\1>", re.S)


def inline_hashes(html: bytes) -> dict[str, list[str]]:
    """The CSP hashes of a page's inline ``<script>`` and ``<style>`` blocks, by element: computed
    from the page as served, so that editing a page cannot leave its CSP behind."""
    out: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        out[kind.decode()].append(f"'sha256-{digest}'")
    return out


def page_csp(pages: Iterable[bytes]) -> str:
    """One policy for every response: the worker's own script, style and JSON, the pages' inline
    blocks by hash, nothing from elsewhere, and no framing (a wallboard shown inside another
    site is the clickjacking case; an operator who embeds it sets this header in the file)."""
    scripts: list[str] = []
    styles: list[str] = []
    for html in pages:
        h = inline_hashes(html)
        scripts += h["script"]
        styles += h["style"]
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *scripts]),
            " ".join(["style-src 'self'", *styles]),
            "connect-src 'self'",
            "img-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


Handler = Callable[[Any], Awaitable[Any]]


class Guard:
    """The aiohttp middleware of every route: basic authentication when the file has users, then
    the headers on whatever answers (the page, a 400, a 404, a 401)."""

    def __init__(self, config: WebConfig | None, csp: str) -> None:
        self.users: Mapping[str, bytes] = config.users if config is not None else {}
        headers = {
            "Server": SERVER,
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if config is not None:
            headers.update(config.headers)
        self.headers = {k: v for k, v in headers.items() if v}  # blank: unset, as in the toolkit
        self.unset = [k for k, v in headers.items() if not v and k != "Server"]
        self._verified: set[bytes] = set()
        self._bcrypt_runs = 0  #: bcrypt verifications done (the cache's effect, for tests)
        self._dummy: bytes | None = None
        self._one_at_a_time: asyncio.Semaphore | None = None

    @property
    def bcrypt_runs(self) -> int:
        return self._bcrypt_runs

    async def authorized(self, header: str | None) -> bool:
        """Whether the Authorization header names a user with the right password. bcrypt runs
        in a thread, one at a time, so a flood of wrong passwords queues instead of stalling the
        event loop; an unknown user costs a bcrypt run too, so timing does not tell users apart."""
        if not self.users:
            return True
        if not header:
            return False
        from aiohttp import BasicAuth

        try:
            creds = BasicAuth.decode(header, encoding="utf-8")
        except ValueError:
            return False
        hashed = self.users.get(creds.login)
        key = hashlib.sha256(
            b"\0".join([creds.login.encode(), creds.password.encode(), hashed or b""])
        ).digest()
        if hashed is not None and key in self._verified:
            return True
        import bcrypt

        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Semaphore(1)
        async with self._one_at_a_time:
            if hashed is not None and key in self._verified:  # verified while this one waited
                return True
            if hashed is None and self._dummy is None:
                self._dummy = await asyncio.to_thread(bcrypt.hashpw, b"", bcrypt.gensalt(10))
            ok = await asyncio.to_thread(
                bcrypt.checkpw, creds.password.encode(), hashed or self._dummy or b""
            )
            self._bcrypt_runs += 1
        if ok and hashed is not None:
            if len(self._verified) >= VERIFIED_MAX:
                self._verified.clear()
            self._verified.add(key)
            return True
        return False

    def decorate(self, response: Any) -> Any:
        for name, value in self.headers.items():
            response.headers[name] = value
        for name in self.unset:
            response.headers.pop(name, None)
        return response

    def middleware(self) -> Callable[[Any, Handler], Awaitable[Any]]:
        from aiohttp import web

        @web.middleware
        async def guard(request: Any, handler: Handler) -> Any:
            if not await self.authorized(request.headers.get("Authorization")):
                return self.decorate(
                    web.Response(
                        status=401,
                        text="401 Unauthorized\n",
                        headers={"WWW-Authenticate": 'Basic realm="ccmon"'},
                    )
                )
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # 404, 405, ...: aiohttp answers with the exception
                self.decorate(exc)
                raise
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("error serving %s", request.path)
                return self.decorate(web.Response(status=500, text="500 Internal Server Error\n"))
            return self.decorate(response)

        return guard


def web_guard(s: Settings) -> tuple[Guard, ssl.SSLContext | None]:
    """The middleware and TLS context of the worker ``s`` configures (CCMON_WEB_CONFIG_FILE);
    the CSP from the pages it serves."""
    from streams.wallboard import agents, callbacks, queues

    config = load_web_config(s.web.config_file) if s.web.config_file else None
    if s.customer_show_clear and (config is None or not config.users):
        # numbers in the clear are personal data: never on a port anyone can read
        raise ConfigError(
            "CCMON_CUSTOMER_SHOW_CLEAR=true needs the web port's authentication: "
            "basic_auth_users in CCMON_WEB_CONFIG_FILE (docs/security.md)"
        )
    guard = Guard(config, page_csp([queues.page(), agents.page(), callbacks.page()]))
    return guard, config.ssl_context if config is not None else None

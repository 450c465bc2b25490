"""Optional CURVE encryption + client authentication (ZMQ's built-in CURVE and ZAP).

Set-up across two machines (see docs/sections/transport.md)::

    python -m learners.transport.auth keys/ learner actor0 actor1   # writes keys/<name>.key(_secret)
    # learner machine: keys/learner.key_secret + keys/authorized/actor*.key
    # each actor machine: keys/learner.key + keys/actor0.key_secret

The learner side (ROUTER and PUB, both bind) is the CURVE server; a ZAP authenticator
thread admits only clients whose public key is a ``.key`` file in
``authorized_clients_dir``. A client with no key or another key never completes the
handshake: it can neither send transitions nor receive weights.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import zmq

from learners.transport.common import Rejections
from learners.transport.config import CurveConfig

log = logging.getLogger(__name__)


class CurveSetupError(RuntimeError):
    """CURVE is enabled but a key file is missing or unreadable, or libzmq lacks CURVE."""


def generate_keys(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write a CURVE key pair as zmq certificate files ``<name>.key`` and ``<name>.key_secret``.

    Args:
        directory: created if needed.
        name: e.g. ``learner`` or ``actor0``.

    Returns:
        (public key file, secret key file). The secret file is made readable by its owner only.
    """
    import zmq.auth

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def authorize(public_file: str | Path, authorized_dir: str | Path) -> Path:
    """Copy a client's public ``.key`` file into the learner's authorized directory."""
    authorized_dir = Path(authorized_dir)
    authorized_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(public_file, authorized_dir / Path(public_file).name))


def _load(path: str | None, what: str, secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not path:
        raise CurveSetupError(f"CURVE is enabled but transport.curve.{what} is not set")
    if not Path(path).is_file():
        raise CurveSetupError(f"CURVE key file {path} ({what}) does not exist")
    if secret:
        mode = Path(path).stat().st_mode & 0o777
        if mode & 0o077:  # like ssh: a secret key others can read is no secret
            raise CurveSetupError(f"CURVE secret key {path} ({what}) has mode {mode:#o}: group or others may "
                                  f"read it; run `chmod 600 {path}`")
    public, secret_key = zmq.auth.load_certificate(path)
    if secret and not secret_key:
        raise CurveSetupError(f"{path} ({what}) holds no secret key; use the .key_secret file")
    return public, secret_key


class ServerAuth:
    """Makes the learner's sockets CURVE servers guarded by a ZAP authenticator.

    Args:
        ctx: the context whose sockets this guards (one authenticator per context).
        curve: the CURVE config; when disabled every method is a no-op.
        rejections: where refused clients are counted and logged (reason ``auth_denied``).
    """

    def __init__(self, ctx: zmq.Context, curve: CurveConfig, rejections: Rejections | None = None) -> None:
        self.curve = curve
        self.rejections = rejections
        self._ctx = ctx
        self._auth = None
        self._keys: tuple[bytes, bytes] | None = None

    def start(self) -> None:
        """Load the keys and start the ZAP authenticator thread (if CURVE is enabled)."""
        if not self.curve.enabled:
            return
        if not zmq.has("curve"):
            raise CurveSetupError("this libzmq was built without CURVE support")
        public, secret = _load(self.curve.server_secret_file, "server_secret_file", secret=True)
        clients = self.curve.authorized_clients_dir
        if not clients or not Path(clients).is_dir():
            raise CurveSetupError(f"transport.curve.authorized_clients_dir={clients!r} is not a directory")
        if not any(Path(clients).glob("*.key")):
            raise CurveSetupError(f"transport.curve.authorized_clients_dir={clients!r} holds no .key file: no actor "
                                  "could connect (authorize one with `python -m learners.transport.auth ... "
                                  "--authorized DIR`)")
        from zmq.auth.thread import ThreadAuthenticator

        rejections = self.rejections

        class _LoggingAuthenticator(ThreadAuthenticator):
            # pyzmq logs refusals at DEBUG only; an operator wants to see them.
            def _send_zap_reply(self, request_id, status_code, status_text, user_id="anonymous"):
                if status_code != b"200" and rejections is not None:
                    rejections.reject("auth_denied", f"CURVE client refused: {status_text.decode(errors='replace')}")
                super()._send_zap_reply(request_id, status_code, status_text, user_id)

        self._auth = _LoggingAuthenticator(self._ctx, log=logging.getLogger(__name__ + ".zap"))
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(clients))
        self._keys = (public, secret)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server (call before bind)."""
        if self._keys is None:
            return
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = self._keys

    def stop(self) -> None:
        """Stop the authenticator thread."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def apply_client(sock: zmq.Socket, curve: CurveConfig) -> None:
    """Make ``sock`` a CURVE client of the learner (call before connect); no-op if disabled."""
    if not curve.enabled:
        return
    server_public, _ = _load(curve.server_public_file, "server_public_file", secret=False)
    public, secret = _load(curve.client_secret_file, "client_secret_file", secret=True)
    sock.curve_serverkey = server_public
    sock.curve_publickey, sock.curve_secretkey = public, secret


def main(argv: list[str] | None = None) -> int:
    """``python -m learners.transport.auth DIR NAME [NAME ...] [--authorize]``: write key pairs."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", help="where to write <name>.key and <name>.key_secret")
    parser.add_argument("names", nargs="+", help="one key pair per name, e.g. learner actor0 actor1")
    parser.add_argument("--authorized", default=None,
                        help="also copy the public keys of every name except 'learner' into this directory")
    args = parser.parse_args(argv)
    for name in args.names:
        public, secret = generate_keys(args.directory, name)
        print(f"{name}: public {public}  secret {secret}")
        if args.authorized and name != "learner":
            print(f"  authorized: {authorize(public, args.authorized)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

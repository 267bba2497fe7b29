"""`vram admin grant EMAIL TOKENS`: credit purchased tokens by hand (recorded in the ledger)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BadInput, NeedsExtra


def register(sub: Any) -> None:
    p = sub.add_parser(
        "admin",
        help="administer the web tool's accounts",
        description="Administer the web tool (uses the same VRAM_* settings as `vram serve`).",
    )
    asub = p.add_subparsers(dest="admin_command", metavar="ACTION")
    g = asub.add_parser("grant", help="credit purchased tokens to an account")
    g.add_argument("email")
    g.add_argument("tokens", type=int)
    g.set_defaults(func=run_grant)


def run_grant(args: argparse.Namespace) -> int:
    try:
        from ..web.auth import normalize_email
        from ..web.services import Services
        from ..web.settings import Settings
    except ImportError as exc:
        raise NeedsExtra("vram admin", "web") from exc
    if args.tokens <= 0:
        raise BadInput("tokens: must be positive", field="tokens")
    svc = Services.build(Settings.from_env())
    try:
        found = svc.user_by_email(normalize_email(args.email))
        if found is None:
            raise BadInput(f"email: no account for {args.email!r}", field="email")
        svc.quota.credit(found[0], args.tokens, "admin")
        print(
            f"granted {args.tokens:,} tokens to {normalize_email(args.email)}; "
            f"purchased balance {svc.quota.purchased(found[0]):,}"
        )
    finally:
        svc.close()
    return 0

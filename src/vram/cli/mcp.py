"""`vram mcp`: serve vram's tools to an MCP client (Claude Desktop, an IDE agent) over stdio."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mcp",
        help="serve estimate, fit, which, explain and models-for-hardware as MCP tools (stdio)",
        description="Model Context Protocol server over stdio (extra `mcp`): tools estimate, fit, "
        "which, explain and models_for_hardware, each returning the same JSON as --json.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    del args
    from ..mcp_server import serve

    serve()
    return 0

"""Swap the staging slot into production, gated on the health check (standard/isolated tiers).

    python3 -m release.swap_slots --resource-group RG --name APP [--slot staging]

1. waits until the staging slot's /readyz answers 200 (bounded retries), else stops: nothing
   is swapped. Readiness, not mere liveness (/healthz): the slot must reach PostgreSQL and Blob
   Storage as the sites' one identity, through the VNet, before it takes production traffic;
2. `az webapp deployment slot swap --slot staging --target-slot production`;
3. checks production's /readyz; if it stays unready, swaps back (unless --no-rollback) and
   fails, so CI/CD shows a red step and users get the previous release again.

Needs the az CLI, signed in (`az login` or a federated CI identity), and network line of sight
to both host names: from inside the VNet for the isolated tier, whose sites are internal.

--platform-warmup-only is for a runner without that line of sight (the isolated tier from a
GitHub-hosted runner): it skips steps 1 and 3 and makes only the swap call, through ARM. The
gate is then App Service's own swap warm-up, which the program configures on every slotted app
(WEBSITE_SWAP_WARMUP_PING_PATH = the health path, WEBSITE_SWAP_WARMUP_PING_STATUSES = 200,
infra/app.py): the platform pings the slot's instances before it switches them over. There is
no check of production afterwards and no swap back; App Service's health check and the
stack's alerts (infra/monitoring.py) report an unhealthy production.
Host names come from `az webapp show` unless --staging-url/--production-url give full URLs.
Standard library only, so any python3 on a CI runner can run it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

HEALTH_PATH = "/readyz"
REQUEST_TIMEOUT_SECONDS = 10


class SwapError(RuntimeError):
    """The swap did not happen or did not stick; the message says which step failed."""


@dataclass(frozen=True)
class HealthGate:
    attempts: int
    interval: float
    sleep: Callable[[float], None] = time.sleep

    def wait_healthy(self, url: str) -> bool:
        for attempt in range(1, self.attempts + 1):
            status = probe(url)
            print(f"health {url}: {status} (attempt {attempt}/{self.attempts})", flush=True)
            if status == "200":
                return True
            if attempt < self.attempts:
                self.sleep(self.interval)
        return False


def probe(url: str) -> str:
    """The HTTP status of a GET as text, or why there was none."""
    # http(s) only: --staging-url/--production-url are checked by http_url, the rest is ours.
    request = urllib.request.Request(url, headers={"User-Agent": "release.swap_slots"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
            return str(response.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"no answer ({reason})"


def az(*args: str) -> str:
    executable = shutil.which("az")
    if executable is None:
        raise SwapError("the az CLI is not on PATH: install it and sign in with `az login`")
    result = subprocess.run(  # noqa: S603 - fixed az sub-commands, operator-supplied names
        [executable, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SwapError(f"`az {' '.join(args)}` failed: {result.stderr.strip() or 'no output'}")
    return result.stdout.strip()


def health_url(resource_group: str, name: str, slot: str | None) -> str:
    slot_args = ["--slot", slot] if slot and slot != "production" else []
    host = az(
        "webapp", "show", "--resource-group", resource_group, "--name", name, *slot_args,
        "--query", "defaultHostName", "--output", "tsv",
    )  # fmt: skip
    if not host:
        raise SwapError(f"az returned no host name for {name} slot {slot or 'production'}")
    return f"https://{host}{HEALTH_PATH}"


def swap(resource_group: str, name: str, slot: str, target: str) -> None:
    print(f"swapping {name}: {slot} -> {target}", flush=True)
    az(
        "webapp", "deployment", "slot", "swap", "--resource-group", resource_group,
        "--name", name, "--slot", slot, "--target-slot", target,
    )  # fmt: skip


def promote_with_platform_warmup(args: argparse.Namespace) -> None:
    swap(args.resource_group, args.name, args.slot, args.target_slot)
    print(f"swapped after App Service's own warm-up of slot {args.slot}; production's health "
          "was not checked from here (no network path): watch its health check and alerts",
          flush=True)


def promote(args: argparse.Namespace, gate: HealthGate) -> None:
    if args.platform_warmup_only:
        promote_with_platform_warmup(args)
        return
    staging_url = args.staging_url or health_url(args.resource_group, args.name, args.slot)
    production_url = args.production_url or health_url(
        args.resource_group, args.name, args.target_slot
    )
    if not gate.wait_healthy(staging_url):
        raise SwapError(
            f"slot {args.slot} never answered 200 on {staging_url}: not swapping "
            "(see the slot's log stream)"
        )
    swap(args.resource_group, args.name, args.slot, args.target_slot)
    if gate.wait_healthy(production_url):
        print(f"{args.target_slot} is healthy on the new release", flush=True)
        return
    if args.no_rollback:
        raise SwapError(f"{args.target_slot} is unhealthy after the swap ({production_url})")
    # Swapping again puts the previous release, still warm in the slot, back in production.
    swap(args.resource_group, args.name, args.slot, args.target_slot)
    raise SwapError(
        f"{args.target_slot} was unhealthy after the swap ({production_url}): swapped back, "
        f"the new release is in slot {args.slot} for inspection"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m release.swap_slots",
        description=(
            "Swap an App Service slot into production once its /readyz answers 200, then "
            "verify production and swap back if it is unhealthy."
        ),
        epilog=(
            "Needs: the az CLI signed in, and network access to both sites "
            "(from inside the VNet for the isolated tier)."
        ),
    )
    parser.add_argument("--resource-group", "-g", required=True)
    parser.add_argument("--name", "-n", required=True, help="the web app's name")
    parser.add_argument("--slot", default="staging", help="slot to promote (default staging)")
    parser.add_argument("--target-slot", default="production")
    parser.add_argument(
        "--staging-url",
        type=http_url,
        help=f"slot health URL (default https://<host>{HEALTH_PATH})",
    )
    parser.add_argument("--production-url", type=http_url, help="target health URL (default: az)")
    parser.add_argument("--attempts", type=positive_int, default=30, help="health probes per check")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between probes")
    parser.add_argument("--no-rollback", action="store_true", help="leave a failed swap in place")
    parser.add_argument(
        "--platform-warmup-only",
        action="store_true",
        help=(
            "no health probes from here (no network path to the sites): swap through ARM and "
            "rely on App Service's swap warm-up (WEBSITE_SWAP_WARMUP_PING_PATH/STATUSES)"
        ),
    )
    args = parser.parse_args(argv)
    if args.slot == args.target_slot:
        parser.error("--slot and --target-slot must differ")
    if args.platform_warmup_only and (args.staging_url or args.production_url or args.no_rollback):
        parser.error("--platform-warmup-only probes nothing: drop --staging-url, "
                     "--production-url and --no-rollback")
    return args


def http_url(text: str) -> str:
    if not text.startswith(("https://", "http://")):
        raise argparse.ArgumentTypeError(f"expected an http(s):// URL, got {text!r}")
    return text


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number above zero, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        promote(args, HealthGate(attempts=args.attempts, interval=args.interval))
    except SwapError as error:
        print(f"swap failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

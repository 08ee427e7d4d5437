"""``offload demo``: the main job end to end, on one machine, with nothing configured.

It starts the suite the way Heroku runs it (Redis, the Procfile's web and worker
processes) next to the local Salesforce org emulator, then does what a
real-estate team's org would do: a photo uploaded to a listing is sent through
a real Outbound Message (SOAP), another through a signed Apex-style callout
(JSON), and both come back as renditions on their records, with the
completion Platform Event. A two-page floor plan (a PDF) uploaded next to the
first photo is sent to ``pdf-preview`` and comes back as two page images. It
prints every step and exits non-zero, saying why, if anything does not arrive.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from devkit.waiting import WaitTimeout, wait_until
from services.clock import utc_iso

T = TypeVar("T")


def demo_photo(width: int, height: int, *, orientation: int = 1) -> bytes:
    """A photo-sized JPEG with photo-like content (gradients, texture, grain), made in well under a second."""
    from PIL import Image, ImageFilter

    small = (max(1, width // 8), max(1, height // 8))
    red = Image.linear_gradient("L").resize(small).rotate(90)
    green = Image.radial_gradient("L").resize(small)
    blue = Image.effect_noise(small, 60).filter(ImageFilter.GaussianBlur(3))
    base = Image.merge("RGB", (red, green, blue)).resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width // 2, height // 2), 18).convert("RGB").resize((width, height))
    image = Image.blend(base, grain, 0.12)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def demo_floor_plan(pages: int = 2) -> bytes:
    """A floor plan of ``pages`` levels drawn with Pillow and saved as a PDF, one A4 page per level."""
    from PIL import Image, ImageDraw

    levels = []
    for level in range(1, pages + 1):
        page = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
        draw = ImageDraw.Draw(page)
        draw.rectangle((120, 160, 1120, 1560), outline="black", width=10)
        draw.line((120, 860, 1120, 860), fill="black", width=6)
        draw.line((620, 160, 620, 860), fill="black", width=6)
        draw.rectangle((140, 880, 1100, 1540), fill=(228, 238, 250))
        draw.arc((560, 820, 680, 940), 180, 270, fill="black", width=4)  # a door
        for x, y, name in ((200, 220, "Bedroom"), (700, 220, "Bath"), (200, 920, "Living / kitchen")):
            draw.text((x, y), name, fill="black", font_size=36)
        draw.text((120, 80), f"12 Harbour View - level {level} of {pages}", fill="black", font_size=44)
        levels.append(page)
    buffer = io.BytesIO()
    levels[0].save(buffer, "PDF", save_all=True, append_images=levels[1:], resolution=150)
    return buffer.getvalue()


class Steps:
    """Numbered progress lines with timings."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.started = time.monotonic()

    def run(self, title: str, action: Callable[[], T], detail: Callable[[T], str] = lambda _: "") -> T:
        self.done += 1
        click.echo(f"[{self.done}/{self.total}] {title} ... ", nl=False)
        began = time.monotonic()
        result = action()
        click.echo(f"{detail(result)} ({time.monotonic() - began:.1f} s)".strip())
        return result


def _renditions(org: Any, source_id: str) -> list[dict[str, Any]]:
    return [r for r in org.state.all_records("ContentVersion") if r.get("Offload_Rendition_Of__c") == source_id]


def _describe(org: Any, rendition: dict[str, Any]) -> str:
    from PIL import Image

    path = org.state.blob_path(rendition["Id"])
    with Image.open(path) as image:
        size, fmt = image.size, image.format
    return (f"    {rendition['PathOnClient']:<34} {fmt:<5} {size[0]:>5}x{size[1]:<5} "
            f"{path.stat().st_size / 1024:>7.1f} KB  {rendition['Id']}")


@click.command()
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for the renditions.")
@click.option("--megapixels", default=24, show_default=True, type=click.IntRange(1, 50),
              help="Size of the listing photo sent by Outbound Message.")
def demo(timeout: float, megapixels: int) -> None:
    """See the main jobs work end to end: photos and a floor plan in, renditions and events back."""
    from devkit.devstack import LocalStack, default_redis_url
    from devkit.embedded_redis import find_redis_server
    from devkit.org.callouts import apex_callout

    steps = Steps(8)
    click.echo("Offload demo: Salesforce -> receiver -> Redis -> worker -> Salesforce, all on this machine.\n")
    redis_url = default_redis_url()
    found = find_redis_server()
    redis_note = "REDIS_URL" if redis_url else (found[1] if found else "fakeredis (slow)")
    stack = LocalStack(redis_url=redis_url, workers=1)
    try:
        steps.run("Starting Redis, the org emulator, and web + worker from the Procfile", stack.start,
                  lambda s: f"Redis: {redis_note}; org {s.org.base_url}; receiver {s.receiver_url}")
        _run(stack, steps, timeout, megapixels, apex_callout)
    except (click.ClickException, RuntimeError, WaitTimeout) as exc:
        message = exc.message if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"\nFAILED: {message}\n\nLast log lines:\n{stack.logs()[-3000:]}", err=True)
        sys.exit(1)
    finally:
        stack.stop()


def _seed(org: Any, name: str, photo: bytes, filename: str) -> tuple[str, str]:
    # Listings that existed before the Outbound Message rule: inserted without firing it.
    account = org.state.insert("Account", {"Name": name}, notify=False)
    return account["Id"], _upload(org, account["Id"], photo, filename)


def _upload(org: Any, record_id: str, data: bytes, filename: str) -> str:
    from devkit.org import records

    version = records.create(org.state, "ContentVersion",
                             {"PathOnClient": filename, "Title": filename.rsplit(".", 1)[0],
                              "FirstPublishLocationId": record_id}, blob=io.BytesIO(data))
    return str(version["Id"])


def _run(stack: Any, steps: Steps, timeout: float, megapixels: int, apex_callout: Any) -> None:
    org = stack.org
    width = int((megapixels * 1_000_000 * 1.5) ** 0.5)
    height = int(width / 1.5)
    photos = steps.run(
        "Making two listing photos",
        lambda: (demo_photo(width, height, orientation=6), demo_photo(4000, 3000)),
        lambda p: f"{width}x{height} JPEG with EXIF orientation 6 ({len(p[0]) / 1e6:.1f} MB) and 4000x3000 "
                  f"({len(p[1]) / 1e6:.1f} MB)",
    )
    (harbour, harbour_photo), (ridge, ridge_photo) = steps.run(
        "Uploading them to two Account records in the org",
        lambda: (_seed(org, "12 Harbour View", photos[0], "harbour-view.jpg"),
                 _seed(org, "7 Ridge Road", photos[1], "ridge-road.jpg")),
        lambda r: f"{r[0][1]} on {r[0][0]}, {r[1][1]} on {r[1][0]}",
    )
    sender = org.state.outbound
    began = time.monotonic()

    def send_outbound() -> dict[str, Any]:
        org.state.update(harbour, {"Description": "Listed; photos ready for the web"})
        return wait_until(lambda: next((d for d in sender.deliveries()
                                   if harbour in d["record_ids"] and d["status"] == "delivered"), None),
                     60, "the Outbound Message to be acknowledged")

    delivery = steps.run(
        "Outbound Message (SOAP) on 12 Harbour View -> /outbound/resize-image", send_outbound,
        lambda d: f"HTTP {d['attempts'][-1]['http_status']}, Ack true after {len(d['attempts'])} attempt(s), "
                  f"{d['attempts'][-1]['duration_ms']:.0f} ms",
    )
    sent_at = utc_iso()
    callout = steps.run(
        "Signed callout (Apex, X-Offload-Signature) for 7 Ridge Road -> /callouts/resize-image",
        lambda: apex_callout(f"{stack.receiver_url}/callouts/resize-image",
                             {"contentVersionId": ridge_photo, "sentAt": sent_at}, secret=stack.callout_secret),
        lambda r: f"HTTP {r.status} {json.loads(r.body).get('jobId', r.body[:200])} in {r.elapsed_ms:.0f} ms",
    )
    if callout.status != 202:
        raise click.ClickException(f"the receiver answered {callout.status}: {callout.body[:300]!r}")
    plan = demo_floor_plan(2)
    floor_plan = steps.run(
        "Uploading a two-page floor plan (PDF drawn with Pillow) to 12 Harbour View",
        lambda: _upload(org, harbour, plan, "harbour-view-floor-plan.pdf"),
        lambda version: f"{version}, {len(plan) / 1e3:.0f} kB",
    )
    preview = steps.run(
        "Signed callout for the floor plan -> /callouts/pdf-preview",
        lambda: apex_callout(f"{stack.receiver_url}/callouts/pdf-preview",
                             {"contentVersionId": floor_plan, "sentAt": utc_iso()}, secret=stack.callout_secret),
        lambda r: f"HTTP {r.status} {json.loads(r.body).get('jobId', r.body[:200])} in {r.elapsed_ms:.0f} ms",
    )
    if preview.status != 202:
        raise click.ClickException(f"the receiver answered {preview.status}: {preview.body[:300]!r}")

    def all_back() -> bool:
        return (len(_renditions(org, harbour_photo)) >= 3 and len(_renditions(org, ridge_photo)) >= 3
                and len(_renditions(org, floor_plan)) >= 2 and len(_events(org)) >= 3)

    steps.run(
        "Waiting for the worker to write the renditions back",
        lambda: wait_until(all_back, timeout, "three renditions of each photo, two page images of the floor "
                                              "plan and three completion events"),
        lambda _: f"all back {time.monotonic() - began:.1f} s after the Outbound Message",
    )
    del delivery
    click.echo("\nRenditions, attached to the same records:")
    for label, source in (("12 Harbour View", harbour_photo), ("7 Ridge Road", ridge_photo),
                          ("12 Harbour View, floor plan", floor_plan)):
        click.echo(f"  {label} (source {source}):")
        for rendition in sorted(_renditions(org, source), key=lambda r: r["Offload_Variant__c"]):
            click.echo(_describe(org, rendition))
    click.echo("\nCompletion events (Offload_Job_Event__e):")
    for event in _events(org):
        fields = event["fields"]
        result = json.loads(fields.get("Result__c") or "{}")
        pages = f" of a {result['pageCount']}-page PDF" if "pageCount" in result else ""
        click.echo(f"    {fields['Status__c']:<10} job {fields['Job_Id__c']}  record {fields['Record_Id__c']}  "
                   f"{result.get('renditionCount', 0)} renditions{pages}, {result.get('apiCalls', '?')} API calls")
    total = time.monotonic() - steps.started
    click.echo(f"\nOrg API calls used: {org.state.api_calls}. Total demo time {total:.1f} s.")
    click.echo("Done: the photos were resized and the floor plan's pages rendered off-platform, and written "
               "back exactly once.")


def _events(org: Any) -> list[dict[str, Any]]:
    return [e for e in org.state.events if e["type"] == "Offload_Job_Event__e"]

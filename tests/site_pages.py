"""What tests need to drive the site's HTML forms like a browser: the CSRF token and a photo."""

from __future__ import annotations

import io
import re

from PIL import Image


def csrf_token(html: str) -> str:
    """The hidden CSRF token of the (first) form on the page."""
    for tag in re.findall(r"<input[^>]*>", html):
        if 'name="csrf_token"' in tag:
            return re.search(r'value="([^"]+)"', tag).group(1)
    raise AssertionError("no csrf_token field in the form")


def png_photo(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 120, 40)
              ) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()

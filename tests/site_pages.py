"""What tests need to drive the site's HTML forms like a browser: hidden fields and a photo."""

from __future__ import annotations

import io
import re

from PIL import Image


def hidden_field(html: str, name: str) -> str:
    """The value of the (first) form's hidden field `name` on the page."""
    for tag in re.findall(r"<input[^>]*>", html):
        if f'name="{name}"' in tag:
            return re.search(r'value="([^"]+)"', tag).group(1)
    raise AssertionError(f"no {name} field in the form")


def png_photo(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 120, 40)
              ) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()

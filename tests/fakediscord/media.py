"""Video attachments as Discord describes them (docs: resources/message.mdx "Attachment Structure").

`content_type` is the upload's media type (IANA: video/mp4, video/webm, video/quicktime for .mov);
`width` and `height` are set "if image or video", and `duration_secs` is "the duration of the
audio or video file". `proxy_url` is the media proxy's copy of the file, as for images.
"""

from __future__ import annotations

import io

#: The media type Discord gives an uploaded clip, by its file name's extension.
VIDEO_CONTENT_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime"}


def video_details(data: bytes) -> tuple[int, int, float | None] | None:
    """Width, height and duration (seconds, None when not declared) of a clip PyAV can open; else None."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            duration = container.duration / 1_000_000 if container.duration else None
            return stream.codec_context.width, stream.codec_context.height, duration
    except Exception:
        return None

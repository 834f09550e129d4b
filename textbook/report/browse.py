"""Pages to look at what ships: a packed OBELICS sample exactly in the order the trainer reads it,
and the near-duplicate image pairs the hash audit found."""

from __future__ import annotations

from html import escape

from textbook.report.data import Dataset, SampleRow
from textbook.report.dedup import MAX_DISTANCE, Audit, video_of
from textbook.report.pages import clock, image_tokens, page, sample_page_path, thumb, url, video_page_path

EXAMPLE_PAIRS = 24  # pairs of each kind shown on the duplicates page
DEFAULT_END_OF_VIDEO = "<|end_of_video|>"


def _end_of_video(data: Dataset) -> str:
    return str((data.config.get("export") or {}).get("end_of_video") or DEFAULT_END_OF_VIDEO)


def sample_page(data: Dataset, sample: SampleRow, browsed: list[SampleRow]) -> str:
    """Positions in order: an image (thumbnail, click for full size) or a text; End-of-Video markers stand out."""
    marker = _end_of_video(data)
    per_image = image_tokens(data)
    items = []
    with_ocr = sample.text_ocr or (None,) * len(sample.texts)
    for n, (image, text, text_ocr) in enumerate(zip(sample.images, sample.texts, with_ocr)):
        if image is not None:
            items.append(f"<p data-kind=\"image\">{thumb('../../' + image, f'position {n}: {image}')}<br>"
                         f"<span class=\"muted\">[{n}] image <code>{escape(image)}</code></span></p>\n")
        elif text == marker:
            items.append(f"<p data-kind=\"eov\"><span class=\"eov\">[{n}] {escape(text)}</span> "
                         "<span class=\"muted\">End of Video</span></p>\n")
        elif text is not None:
            items.append(f"<p data-kind=\"text\"><span class=\"muted\">[{n}] text</span> {escape(text)}</p>\n")
            ocr = (text_ocr or "")[len(text):].strip() if (text_ocr or "").startswith(text) else ""
            if ocr:
                items.append("<div class=\"ocr\"><div class=\"label\">+ OCR, in text_ocr_list only</div>"
                             f"{escape(ocr)}</div>\n")
    cost = (f"{sample.image_num} image(s) × {per_image} tokens + text" if per_image is not None
            else f"{sample.image_num} image(s) + text")
    at = browsed.index(sample)
    nav = ["<a href=\"../index.html#samples\">&larr; Dataset report</a>"]
    if at > 0:
        nav.append(f"<a href=\"{url('../' + sample_page_path(browsed[at - 1].index))}\">previous sample</a>")
    if at + 1 < len(browsed):
        nav.append(f"<a href=\"{url('../' + sample_page_path(browsed[at + 1].index))}\">next sample</a>")
    videos = ", ".join(f"<a href=\"{url('../' + video_page_path(v))}\"><code>{escape(v)}</code></a>"
                       if v in data.shown else f"<code>{escape(v)}</code>" for v in sample.video_ids)
    body = (f"<nav>{' · '.join(nav)}</nav>\n<h1>Sample #{sample.index}</h1>\n"
            f"<p>From <code>{escape(sample.shard)}</code>: {len(sample.images)} positions, "
            f"{sample.image_num} image(s), {sample.text_num} transcript tokens, {sample.token_num} tokens in all "
            f"({cost}, End-of-Video markers included). Videos, in order: {videos}.</p>\n"
            "<p class=\"muted\">Exactly the sample's <code>images</code> and <code>texts</code> lists: each "
            f"position holds an image or a text (a clip's transcript); <code>{escape(marker)}</code> ends each video. "
            "A trainer reading <code>text_ocr_list</code> instead gets each text followed by the clip's OCR lines, "
            "shown in the grey boxes; <code>token_num</code> counts <code>texts</code> only.</p>\n"
            f"<div class=\"sample\">\n{''.join(items)}</div>\n")
    return page(f"Sample #{sample.index}", body)


def _pair(pair_a: str, pair_b: str, distance: int) -> str:
    cells = []
    for path in (pair_a, pair_b):
        vid = video_of(path)
        cells.append(f"<div>{thumb('../' + path, path)}<br><a href=\"{url(video_page_path(vid))}\">"
                     f"<code>{escape(vid)}</code></a> <span class=\"muted\">{escape(_when(path))}</span></div>")
    return f"<div class=\"pair\">{''.join(cells)}<div class=\"muted\">{distance} of 64 bits differ</div></div>\n"


def _when(path: str) -> str:
    """The clip bounds and keyframe number in a keyframe file name (<vid>@<start>_<end>#<k>.jpg)."""
    name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    span, _, k = name.partition("@")[2].partition("#")
    start, _, end = span.partition("_")
    try:
        return f"{clock(float(start))}–{clock(float(end))} #{k}"
    except ValueError:
        return name


def duplicates_page(dupes: Audit) -> str:
    parts = ["<nav><a href=\"index.html#duplicates\">&larr; Dataset report</a></nav>\n",
             "<h1>Near-duplicate images</h1>\n",
             (f"<p>Every keyframe under <code>images/</code> of the exported videos ({dupes.images}, also those the "
              "visual filter dropped) hashed with a 64-bit difference hash (dHash: brightness gradients of a 9×8 "
              f"grayscale thumbnail); pairs differing in at most {MAX_DISTANCE} bits look the same at a glance. "
              "Closest pairs first.</p>\n")]
    for across, title in ((False, "Within one video"), (True, "Across videos")):
        pairs = [p for p in dupes.pairs if p.across == across]
        count = dupes.pair_count(across)
        parts.append(f"<h2>{title}: {count} pair(s), {dupes.share(across):.0%} of the images</h2>\n")
        parts.extend(_pair(p.a, p.b, p.distance) for p in pairs[:EXAMPLE_PAIRS])
        if not count:
            parts.append("<p>None.</p>\n")
        elif count > EXAMPLE_PAIRS:
            parts.append(f"<p class=\"muted\">{count - min(len(pairs), EXAMPLE_PAIRS)} more pair(s) not shown.</p>\n")
    return page("Near-duplicate images", "".join(parts))

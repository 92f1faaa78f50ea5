"""Command line: `classify` and `similar` without Discord, and `run` for the bot.

The same service and engine as the bot. Results go to stdout (a table, or
`--json`), logs and errors to stderr; a bad file or bad labels is one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config import Settings
from bot.engine.filetypes import SUPPORTED_HINT, clip_format, image_format
from bot.errors import ConfigError, EngineError, ImageError, StartupError, UserFacingError, too_large_message
from bot.logs import redact_as_logged, setup_logging
from bot.render import bar, cosine_fraction, percent
from bot.service import Ranking
from bot.services import create_services

log = logging.getLogger("bot")

#: Exit codes (README, "Running for the long term"): 0 a clean stop (also SIGTERM/SIGINT),
#: 1 a failure a restart may fix (network, download, crash), 2 bad input, and 78
#: (EX_CONFIG from sysexits.h) a configuration error that a restart cannot fix, so
#: that a supervisor can stop retrying (systemd's RestartPreventExitStatus=78).
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Zero-shot image classification and phrase similarity with local CLIP.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model-dir", type=Path, help="folder with visual.onnx and textual.onnx (offline)")
        p.add_argument("--model-id", help="Roboflow CLIP id, e.g. clip/ViT-B-16 (default)")
        p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default: LOG_LEVEL for run, WARNING otherwise)")
        p.add_argument("-v", "--verbose", action="count", default=0, help="show logs (-v info, -vv debug)")

    classify = sub.add_parser("classify", help="rank labels for an image")
    classify.add_argument("image", type=Path, help="image file, or an MP4, WebM or MOV clip (a few frames)")
    classify.add_argument("--labels", required=True, help='comma-separated, e.g. "drink, bloody mary, man"')
    classify.add_argument(
        "--template",
        help='prompt template with {} (default "a photo of a {}"); "none" for raw labels; '
        '"ensemble" for CLIP\'s 7-template ensemble',
    )
    classify.add_argument("--json", action="store_true", help="print JSON results only")
    model_options(classify)
    precision_option(classify)

    similar = sub.add_parser("similar", help="rank phrases by similarity to a phrase")
    similar.add_argument("text", help="the phrase to compare")
    similar.add_argument("--others", required=True, help='comma-separated, e.g. "globe, cat, dog"')
    similar.add_argument("--json", action="store_true", help="print JSON results only")
    model_options(similar)
    precision_option(similar)

    run = sub.add_parser("run", help="start the Discord bot")
    model_options(run)
    return parser


def precision_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=("fp32", "auto", "bf16", "int8"),
        default="fp32",
        help="the image encoder's CPU precision (default fp32, the exact path; auto: the bot's choice)",
    )


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from env/.env, with command-line overrides on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "model_dir", None) is not None:
        overrides["clip_model_dir"] = args.model_dir
    if getattr(args, "model_id", None):
        overrides["clip_model_id"] = args.model_id
    if getattr(args, "precision", None):  # one-shot queries: the exact fp32 path unless asked
        overrides["clip_precision"] = args.precision
        if args.precision == "fp32":
            overrides["clip_runtime"] = "auto"
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    elif getattr(args, "verbose", 0):
        overrides["log_level"] = "DEBUG" if args.verbose > 1 else "INFO"
    elif args.command != "run":
        # A one-shot query prints its answer, or one `error:` line; logs only on request.
        overrides["log_level"] = "WARNING"
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]).upper()
        print(redact_as_logged(f"error: setting {where}: {first['msg']}"), file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.secrets())
    try:
        if args.command == "run":
            from bot.discord.client import run_bot  # the only path that imports discord

            return run_bot(settings)
        return asyncio.run(_run_query(args, settings))
    except StartupError as exc:
        print(f"error: {redact_as_logged(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


async def _run_query(args: argparse.Namespace, settings: Settings) -> int:
    # One query: tuning the sessions is not worth a few CPU-seconds.
    services = create_services(settings, tune_sessions=False)
    engine, service = services.engine, services.clip
    try:
        # Everything that can be refused is refused before CLIP loads (seconds).
        if args.command == "classify":
            labels, template = service.parse_classify(args.labels, args.template)
            data = await asyncio.to_thread(_read_image_file, args.image, settings.max_image_bytes)
            await engine.start()
            ranking = await service.classify(data, labels, template)
        else:
            text, others = service.parse_similar(args.text, args.others)
            await engine.start()
            ranking = await service.similar(text, others)
    except UserFacingError as exc:
        print(f"error: {redact_as_logged(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EngineError as exc:
        log.error("CLIP failed", exc_info=exc.__cause__ or exc)
        print(f"error: {redact_as_logged(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await services.aclose()

    with_probability = args.command == "classify"
    if args.json:
        print(json.dumps({**ranking_json(ranking, with_probability=with_probability), "runtime": engine.runtime}))
    else:
        info = engine.info
        where = f"{info.model} on {info.device}, {engine.runtime}" if info else settings.model_label
        print(format_table(ranking, with_probability=with_probability, header=where))
    return 0


#: What an `OSError` from opening a path means, in words (errno -> reason).
_PATH_PROBLEMS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder, not a file",
}


def shown_path(path: Path) -> str:
    """A path for an `error:` line: as typed, or `repr`-escaped when it holds a control or other
    unprintable character (a newline, an ANSI escape), so the line stays one inert line."""
    name = str(path)
    return name if name.isprintable() else repr(name)


def _read_image_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes if they can be an image within limits, or a one-line `ImageError`.

    Checks what is cheap (exists, a regular file, size, not empty, an image
    format's leading bytes) so that bad input is refused before CLIP loads.
    """
    name = shown_path(path)
    try:
        if not path.is_file():
            if path.exists():
                raise ImageError(f"Cannot read {name}: it is not a regular file.")
            path.stat()  # raises the precise reason (no such file, a loop, ...)
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"{name}: {too_large_message(size, max_bytes)}")
        data = path.read_bytes()
    except OSError as exc:
        reason = _PATH_PROBLEMS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        if exc.errno == errno.ENOENT:
            raise ImageError(f"No such file: {name}") from None
        raise ImageError(f"Cannot read {name}: {reason}.") from None
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes).")
    if len(data) > max_bytes:  # grew since stat
        raise ImageError(f"{name}: {too_large_message(len(data), max_bytes)}")
    if image_format(data) is None and clip_format(data) is None:
        raise ImageError(f"{name} is not an image I can read (use {SUPPORTED_HINT}).")
    return data


def ranking_json(ranking: Ranking, *, with_probability: bool) -> dict[str, Any]:
    """`{"results": [...]}`, best first; labels as the user gave them.

    Each result says whether its label was cut to CLIP's 77 tokens (`truncated`) and,
    for `classify`, whether it was used without the template (`template_dropped`);
    `similar` adds whether the subject phrase was cut (`subject_truncated`).
    """
    cut, dropped = set(ranking.truncated), set(ranking.template_dropped)
    results = []
    for score in ranking.scores:
        row: dict[str, Any] = {"label": score.label}
        if with_probability:
            row["probability"] = score.probability
        row["cosine"] = score.cosine
        row["truncated"] = score.label in cut
        if with_probability:
            row["template_dropped"] = score.label in dropped
        results.append(row)
    payload: dict[str, Any] = {"results": results}
    if ranking.frames:  # classify: how many frames the image was embedded from (1: a still)
        payload["frames"] = ranking.frames[0]
    if not with_probability:
        payload["subject_truncated"] = ranking.subject_truncated
    return payload


def format_table(ranking: Ranking, *, with_probability: bool, header: str) -> str:
    """A human-readable ranking for the terminal; labels CLIP did not see as typed are marked."""
    lines = [f"{header} · {ranking.elapsed_s:.2f} s"]
    if with_probability:
        lines[0] += f" · template: {ranking.template!r}" if ranking.template else " · no template"
    if ranking.frames and ranking.frames[0] > 1:
        lines[0] += f" · from {ranking.frames[0]} frames"
    cut, dropped = set(ranking.truncated), set(ranking.template_dropped)
    width = max(len(s.label) for s in ranking.scores)
    for place, score in enumerate(ranking.scores, 1):
        mark = " (cut)" if score.label in cut else " (no template)" if score.label in dropped else ""
        if with_probability and score.probability is not None:
            lines.append(
                f"{place:>3}. {score.label:<{width}}  {percent(score.probability):>6}  "
                f"{bar(score.probability)}  cos {score.cosine:.4f}{mark}"
            )
        else:
            lines.append(
                f"{place:>3}. {score.label:<{width}}  cos {score.cosine:.4f}  "
                f"{bar(cosine_fraction(score.cosine))}{mark}"
            )
    long = ["the phrase"] * ranking.subject_truncated + ["labels marked (cut)"] * bool(ranking.truncated)
    if long:
        lines.append(f"note: {' and '.join(long)}: longer than CLIP's 77 tokens, so only the start was used")
    if ranking.template_dropped:
        lines.append("note: labels marked (no template) were too long with the template and were used without it")
    return "\n".join(lines)

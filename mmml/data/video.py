"""Decoding the frames of a video clip that a sampler asks for, with decord or PyAV.

`sample_frame_indices(total_frames, num_frames, sampling)` picks frame indices from the clip's
frame count (the container's metadata):

- `"uniform"` (evaluation): the middle frame of each of `n = num_frames` equal segments
  `[i * total // n, (i + 1) * total // n)`; deterministic, spread over the whole clip.
- `"segments"` (training, TSN-style): one random frame in each of the same segments, drawn from
  `rng` (a `numpy.random.Generator` or a seed).

A clip with fewer frames than asked (`short_clip`):

- `"pad"` (default): its real frames only, each once (`0 .. total - 1`); nothing is invented. The
  `FrameProcessor` pads the batch to its longest clip and `video_frame_mask` marks the padding 0.
- `"repeat"`: `num_frames` indices, real frames repeated in order (`(2i + 1) * total // (2n)`); every
  position is a real frame, so the mask is all ones.

`decode_video(source, num_frames, sampling, decoder)` returns a `DecodedClip` (uint8 frames
`[F, H, W, 3]`, their indices, the clip's frame count, fps). `source` is a path, the bytes of a
container, a `{"bytes", "path"}` dict (as `datasets` stores files), or a clip already in memory: a
list of encoded frame images (PNG / JPEG bytes, `{"bytes", "path"}` dicts, PIL images or `[H, W, 3]`
arrays) or a uint8 array `[F, H, W, 3]`; in-memory clips are sampled the same way and only the
sampled frames are decoded.

Backends (`decoder=`): `"decord"`, `"pyav"` or `"auto"` (decord when installed, else PyAV; with
`"auto"` a clip decord cannot decode is retried with PyAV, since decord fails on some valid files,
e.g. frames 48 px wide: "DECORDArrayCopyFromTo: The size must exactly match"). Both
count frames the same way and return the same indices and, on the clips we checked
(`tests/test_video_decoding.py`: H.264 mp4 and MPEG-4 avi), bit-identical pixels (the test allows 2
levels of YUV->RGB rounding). decord is unmaintained and known to leak (dmlc/decord#1, #157, #208:
memory held by long-lived readers, background decoding, seeks), so every call opens one reader
and frees it before returning, and bytes sources are written to a temporary file that decord
reads by path (its file-like-object path copies the whole container into its backend; with
test.mp4, short-lived readers over `BytesIO` grew RSS by ~40 MB before levelling off, readers over
paths by ~8 MB). PyAV containers are always closed (context managers). PyAV decodes sequentially
from the first frame to the last index asked for (exact for any container, no seeking), converting
only the sampled frames to RGB. When a container's metadata promises more frames than it holds,
PyAV samples again from the frames it could decode; decord counts the packets it finds, so both
agree (a truncated avi: 77 of 164); decord substitutes its last good frame for undecodable ones
(its own fault tolerance).

A clip that cannot be opened or decoded, has no video stream or has zero frames raises
`VideoDecodeError` (a `ValueError`) whose message names the file (or `<N bytes>` / the in-memory
clip), which `MultimodalCollator(skip_bad_samples=True)` skips and counts. Bad options
(`num_frames < 1`, an unknown `sampling` / `decoder` / `short_clip`) raise a plain `ValueError`
listing the valid values.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from PIL import Image

from mmml.data.images import ImageDecodeError, decode_image

__all__ = [
    "DECODERS",
    "SAMPLINGS",
    "SHORT_CLIP_MODES",
    "DecodedClip",
    "VideoDecodeError",
    "VideoDecoder",
    "available_video_decoders",
    "decode_video",
    "describe_video_source",
    "resolve_video_decoder",
    "sample_frame_indices",
    "video_problem",
]

logger = logging.getLogger(__name__)

SAMPLINGS = ("uniform", "segments")
DECODERS = ("auto", "decord", "pyav")
SHORT_CLIP_MODES = ("pad", "repeat")

VideoSource = Union[str, os.PathLike, bytes, bytearray, Mapping[str, Any], Sequence[Any], np.ndarray]


class VideoDecodeError(ValueError):
    """A clip could not be read or decoded, or has no frames; the message names the file (or the byte source)."""


@dataclass(frozen=True, eq=False)
class DecodedClip:
    """The decoded frames of one clip.

    `frames`: uint8 `[F, H, W, 3]` RGB, `F == len(indices)`; `indices`: the frame index of each
    (non-decreasing); `total_frames`: the clip's frame count; `fps`: frames per second when the
    container says (None for in-memory clips); `backend`: `"decord"`, `"pyav"` or `"memory"`.
    """

    frames: np.ndarray
    indices: list[int]
    total_frames: int
    fps: float | None
    backend: str

    @property
    def num_frames(self) -> int:
        return len(self.indices)

    def images(self) -> list[Image.Image]:
        """The frames as PIL RGB images."""
        return [Image.fromarray(frame) for frame in self.frames]


# ---------------------------------------------------------------- options and sampling


def _check_options(num_frames: int, sampling: str, decoder: str = "auto", short_clip: str = "pad",
                   where: str = "") -> None:
    suffix = f" (decoding {where})" if where else ""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be an integer >= 1, got {num_frames!r}{suffix}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(map(repr, SAMPLINGS))}, got {sampling!r}{suffix}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(map(repr, DECODERS))}, got {decoder!r}{suffix}")
    if short_clip not in SHORT_CLIP_MODES:
        raise ValueError(
            f"short_clip must be one of {', '.join(map(repr, SHORT_CLIP_MODES))}, got {short_clip!r}{suffix}"
        )


def sample_frame_indices(total_frames: int, num_frames: int, sampling: str = "uniform",
                         rng: np.random.Generator | int | None = None, short_clip: str = "pad") -> list[int]:
    """The frame indices to decode from a clip of `total_frames` frames (see the module docstring).

    `rng` is used by `"segments"` only (a Generator, a seed, or None for fresh entropy). Indices
    are non-decreasing and in `[0, total_frames)`; there are `num_frames` of them, or
    `total_frames` when the clip is shorter and `short_clip="pad"`.
    """
    _check_options(num_frames, sampling, short_clip=short_clip)
    total, count = int(total_frames), int(num_frames)
    if total < 1:
        raise ValueError(f"a clip with {total_frames} frames has no frame to sample")
    if total < count:
        if short_clip == "pad":
            return list(range(total))
        return [(2 * i + 1) * total // (2 * count) for i in range(count)]
    starts = np.arange(count, dtype=np.int64) * total // count
    ends = (np.arange(count, dtype=np.int64) + 1) * total // count  # every segment holds >= 1 frame
    if sampling == "uniform":
        return ((starts + ends - 1) // 2).astype(int).tolist()
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return (starts + generator.integers(0, ends - starts)).astype(int).tolist()


# ---------------------------------------------------------------- backends


def available_video_decoders() -> list[str]:
    """The installed backends, in the order `decoder="auto"` prefers them."""
    names = []
    if importlib.util.find_spec("decord") is not None:
        names.append("decord")
    if importlib.util.find_spec("av") is not None:
        names.append("pyav")
    return names


def resolve_video_decoder(decoder: str = "auto") -> str:
    """`"decord"` or `"pyav"`: the backend `decoder` names, `"auto"` being decord when installed, else PyAV."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(map(repr, DECODERS))}, got {decoder!r}")
    available = available_video_decoders()
    if decoder == "auto":
        if not available:
            raise ImportError("decoding video needs decord or PyAV: pip install 'mmml[video]'")
        return available[0]
    if decoder not in available:
        package = "decord" if decoder == "decord" else "av"
        raise ImportError(f"decoder={decoder!r} needs the {package!r} package: pip install {package} "
                          f"(or 'mmml[video]'); installed backends: {available or 'none'}")
    return decoder


def describe_video_source(source: Any) -> str:
    """How error messages name `source`: the path, `<N bytes>`, or `<in-memory clip of N frames>`."""
    if isinstance(source, Mapping):
        data, path = source.get("bytes"), source.get("path")
        if data:
            return f"<{len(data)} bytes from {path or 'memory'}>"
        return str(path) if path else "<video dict without bytes or path>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, np.ndarray):
        return f"<in-memory clip array {tuple(source.shape)}>"
    if isinstance(source, Sequence):
        return f"<in-memory clip of {len(source)} frames>"
    return type(source).__name__


_DECORD_PREFIX = re.compile(r"^\[[0-9:]+\] \S+: (Check failed: .*? \([^()]* vs\. [^()]*\)\s*)?")


def _first_line(error: BaseException, spooled: str | None = None, name: str = "") -> str:
    text = str(error).strip()
    # decord's messages start with "[time] file.cc:line: Check failed: ..." and carry a C++ stack trace
    line = _DECORD_PREFIX.sub("", text.splitlines()[0]) if text else ""
    if spooled:
        line = line.replace(spooled, name)
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _spooled(data: bytes):
    """A named temporary file holding `data`, so decord reads a path, not a file-like object (module docstring)."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    handle = tempfile.NamedTemporaryFile(prefix="mmml-video-", suffix=".bin", dir=directory)
    handle.write(data)
    handle.flush()
    return handle


def _decode_decord(path: str, name: str, num_frames: int, sampling: str, rng, short_clip: str,
                   num_threads: int, spooled: bool = False, first_frame_only: bool = False) -> DecodedClip:
    import decord

    errors = (decord.DECORDError, RuntimeError)
    spool = path if spooled else None
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
    except errors as error:
        _explain_with_pyav(path, name)  # a clearer message for empty or stream-less containers
        raise VideoDecodeError(f"cannot decode video {name}: decord: {_first_line(error, spool, name)}") from None
    try:
        total = len(reader)
        if total < 1:
            raise VideoDecodeError(f"video {name} has zero frames")
        indices = [0] if first_frame_only else sample_frame_indices(total, num_frames, sampling, rng, short_clip)
        unique = sorted(set(indices))
        batch = reader.get_batch(unique).asnumpy()
        fps = float(reader.get_avg_fps())
    except errors as error:
        raise VideoDecodeError(f"cannot decode video {name}: decord: {_first_line(error, spool, name)}") from None
    finally:
        del reader
    if batch.ndim != 4 or batch.shape[0] != len(unique) or batch.shape[-1] != 3:
        raise VideoDecodeError(f"cannot decode video {name}: decord returned frames of shape {batch.shape}")
    position = {index: row for row, index in enumerate(unique)}
    frames = batch if unique == indices else batch[[position[index] for index in indices]]
    return DecodedClip(np.ascontiguousarray(frames), indices, total, fps if fps > 0 else None, "decord")


def _pyav_count(open_container) -> int:
    """The stream's frame count: the container's `nb_frames`, else its packets (as decord counts them)."""
    with open_container() as container:
        if not container.streams.video:
            return -1
        stream = container.streams.video[0]
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _pyav_read(open_container, indices: list[int], num_threads: int) -> tuple[dict[int, np.ndarray], int, float | None]:
    """Decode from the start to the last index: RGB arrays of the wanted frames, how many were decoded, fps."""
    wanted = set(indices)
    last = max(indices)
    frames: dict[int, np.ndarray] = {}
    position = -1
    with open_container() as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = num_threads
        rate = stream.average_rate or stream.guessed_rate
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted:
                frames[position] = frame.to_ndarray(format="rgb24")
            if position >= last:
                break
    return frames, position + 1, (float(rate) if rate else None)


def _explain_with_pyav(path: str, name: str) -> None:
    """Raise "no video stream" / "zero frames" for `path` when PyAV can tell; otherwise return."""
    if importlib.util.find_spec("av") is None:
        return
    import av

    try:
        total = _pyav_count(lambda: av.open(path, mode="r"))
    except Exception:  # noqa: BLE001 - PyAV cannot tell either: keep decord's message
        return
    if total < 0:
        raise VideoDecodeError(f"video {name} has no video stream")
    if total == 0:
        raise VideoDecodeError(f"video {name} has zero frames")


def _decode_pyav(source: str | bytes, name: str, num_frames: int, sampling: str, rng, short_clip: str,
                 num_threads: int, first_frame_only: bool = False) -> DecodedClip:
    import av

    def open_container():
        return av.open(io.BytesIO(source) if isinstance(source, bytes) else source, mode="r")

    if isinstance(rng, (int, np.integer)) or rng is None:
        rng = np.random.default_rng(rng)
    draw_state = copy.deepcopy(rng)  # to sample again if the metadata promises frames that are not there
    try:
        total = _pyav_count(open_container)
        if total < 0:
            raise VideoDecodeError(f"video {name} has no video stream")
        if total == 0:
            raise VideoDecodeError(f"video {name} has zero frames")
        indices = [0] if first_frame_only else sample_frame_indices(total, num_frames, sampling, rng, short_clip)
        frames, decoded, fps = _pyav_read(open_container, indices, num_threads)
        if len(frames) < len(set(indices)):
            if decoded < 1:
                raise VideoDecodeError(f"video {name} has zero decodable frames ({total} in its metadata)")
            # fewer frames than the metadata says: sample from the ones that exist
            total = decoded
            indices = sample_frame_indices(total, num_frames, sampling, draw_state, short_clip)
            frames, decoded, fps = _pyav_read(open_container, indices, num_threads)
            if len(frames) < len(set(indices)):
                raise VideoDecodeError(f"cannot decode video {name}: frames {sorted(set(indices) - set(frames))} "
                                       "decode differently on a second pass")
    except av.FFmpegError as error:
        raise VideoDecodeError(f"cannot decode video {name}: PyAV: {_first_line(error)}") from None
    except (IndexError, EOFError, UnicodeDecodeError) as error:  # PyAV's own errors for broken metadata
        raise VideoDecodeError(f"cannot decode video {name}: PyAV: {_first_line(error)}") from None
    return DecodedClip(np.stack([frames[index] for index in indices]), indices, total, fps, "pyav")


def _frame_array(frame: Any, name: str, index: int) -> np.ndarray:
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise VideoDecodeError(f"frame {index} of {name} is not a uint8 [H, W, 3] array "
                                   f"(shape {frame.shape}, dtype {frame.dtype})")
        return frame
    try:
        return np.asarray(decode_image(frame))
    except ImageDecodeError as error:
        raise VideoDecodeError(f"cannot decode frame {index} of {name}: {error}") from None
    except TypeError:
        raise VideoDecodeError(f"frame {index} of {name} is a {type(frame).__name__}, not an encoded image, "
                               "PIL image or array") from None


def _decode_memory(frames: Sequence[Any] | np.ndarray, name: str, num_frames: int, sampling: str, rng,
                   short_clip: str) -> DecodedClip:
    if isinstance(frames, np.ndarray) and (frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8):
        raise VideoDecodeError(f"an in-memory clip array must be uint8 [F, H, W, 3]; {name} has dtype {frames.dtype}")
    total = len(frames)
    if total < 1:
        raise VideoDecodeError(f"video {name} has zero frames")
    indices = sample_frame_indices(total, num_frames, sampling, rng, short_clip)
    if isinstance(frames, np.ndarray):
        return DecodedClip(np.ascontiguousarray(frames[indices]), indices, total, None, "memory")
    decoded = {index: _frame_array(frames[index], name, index) for index in sorted(set(indices))}
    shapes = {array.shape for array in decoded.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(f"the frames of {name} differ in size: {sorted(shapes)}")
    return DecodedClip(np.stack([decoded[index] for index in indices]), indices, total, None, "memory")


_fallback_logged = False


def _decode_container(source: str | bytes, name: str, num_frames: int, sampling: str, decoder: str, rng,
                      short_clip: str, num_threads: int) -> DecodedClip:
    """A path or container bytes through the backend `decoder` names; "auto" retries decord's failures with PyAV."""
    global _fallback_logged
    backend = resolve_video_decoder(decoder)
    if backend == "pyav":
        return _decode_pyav(source, name, num_frames, sampling, rng, short_clip, num_threads)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    retry_rng = copy.deepcopy(rng)  # PyAV draws what decord would have drawn
    try:
        if isinstance(source, bytes):
            with _spooled(source) as handle:
                return _decode_decord(handle.name, name, num_frames, sampling, rng, short_clip, num_threads,
                                      spooled=True)
        return _decode_decord(source, name, num_frames, sampling, rng, short_clip, num_threads)
    except VideoDecodeError as decord_error:
        if decoder != "auto" or "pyav" not in available_video_decoders():
            raise
        try:
            clip = _decode_pyav(source, name, num_frames, sampling, retry_rng, short_clip, num_threads)
        except VideoDecodeError as pyav_error:
            raise VideoDecodeError(f"{pyav_error} (decord: {decord_error})") from None
        log = logger.debug if _fallback_logged else logger.warning
        _fallback_logged = True
        log("decord could not decode %s (%s); decoded it with PyAV (further fallbacks are logged at DEBUG level)",
            name, decord_error)
        return clip


def decode_video(source: VideoSource, num_frames: int = 8, sampling: str = "uniform", decoder: str = "auto",
                 rng: np.random.Generator | int | None = None, short_clip: str = "pad",
                 num_threads: int = 0) -> DecodedClip:
    """Decode the frames `sample_frame_indices` picks from `source` (see the module docstring).

    Args:
        source: a path, container bytes, a `{"bytes", "path"}` dict, a list of encoded frames or a
            uint8 `[F, H, W, 3]` array.
        num_frames: frames per clip (>= 1).
        sampling: `"uniform"` (evaluation) or `"segments"` (training, one random frame per segment).
        decoder: `"auto"` (decord when installed, else PyAV; a clip decord fails on is retried
            with PyAV, logged), `"decord"` or `"pyav"`; unused for in-memory clips.
        rng: the Generator (or seed) `"segments"` draws from.
        short_clip: `"pad"` (a short clip's real frames only) or `"repeat"` (repeat them to `num_frames`).
        num_threads: decoder threads (0: the library's choice).

    Raises:
        VideoDecodeError: missing file, unreadable / corrupt container, no video stream, zero frames.
        ValueError: a bad option.
    """
    name = describe_video_source(source)
    _check_options(num_frames, sampling, decoder, short_clip, where=name)
    if isinstance(source, Mapping):
        data, path = source.get("bytes"), source.get("path")
        if data:
            source = bytes(data)
        elif path:
            source = os.fspath(path)
        else:
            raise VideoDecodeError(f"video dict has neither bytes nor path: keys {sorted(source)}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise VideoDecodeError(f"video {name} is empty")
        return _decode_container(data, name, num_frames, sampling, decoder, rng, short_clip, num_threads)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise VideoDecodeError(f"video file not found: {path}")
        return _decode_container(path, name, num_frames, sampling, decoder, rng, short_clip, num_threads)
    if isinstance(source, np.ndarray) or (isinstance(source, Sequence) and not isinstance(source, str)):
        return _decode_memory(source, name, num_frames, sampling, rng, short_clip)
    raise TypeError(f"cannot decode a video from {type(source).__name__}: pass a path, bytes, a "
                    "{'bytes', 'path'} dict, a list of encoded frames or a uint8 [F, H, W, 3] array")


def video_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not a usable clip (missing, cannot be opened, no video stream, zero frames), or None.

    Opens the container and decodes its first frame (with PyAV when installed, else decord); with
    no backend installed it only checks that the file exists.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return "file not found"
    available = available_video_decoders()
    try:
        if "pyav" in available:
            _decode_pyav(path, path, 1, "uniform", None, "pad", 1, first_frame_only=True)
        elif "decord" in available:
            _decode_decord(path, path, 1, "uniform", None, "pad", 1, first_frame_only=True)
    except VideoDecodeError as error:
        return str(error)
    return None


# ---------------------------------------------------------------- the collator's decoder


class VideoDecoder:
    """The `video` column's decoder in `MultimodalCollator`: `decoder(source, rng=None)` -> list of PIL frames.

    Holds the options (validated when built): `num_frames` (8), `sampling` (`"segments"`, for
    training; `"uniform"` for evaluation), `decoder` (`"auto"`), `short_clip` (`"pad"`) and
    `num_threads` (0). The collator passes an `rng` seeded per (seed, epoch, item) when the items
    carry a `media_seed` (`MultimodalPairs` items do). Picklable, for DataLoader workers.
    """

    __slots__ = ("num_frames", "sampling", "decoder", "short_clip", "num_threads")

    def __init__(self, num_frames: int = 8, sampling: str = "segments", decoder: str = "auto",
                 short_clip: str = "pad", num_threads: int = 0):
        _check_options(num_frames, sampling, decoder, short_clip)
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f"num_threads must be an integer >= 0, got {num_threads!r}")
        self.num_frames = int(num_frames)
        self.sampling = sampling
        self.decoder = decoder
        self.short_clip = short_clip
        self.num_threads = num_threads

    def options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def replace(self, **options) -> VideoDecoder:
        """A copy with some options changed (`decoder.replace(sampling="uniform")`)."""
        unknown = sorted(set(options) - set(self.__slots__))
        if unknown:
            raise ValueError(f"VideoDecoder has no option {', '.join(map(repr, unknown))}; "
                             f"its options: {', '.join(self.__slots__)}")
        return VideoDecoder(**{**self.options(), **options})

    def __call__(self, source: VideoSource, rng: np.random.Generator | None = None) -> list[Image.Image]:
        clip = decode_video(source, num_frames=self.num_frames, sampling=self.sampling, decoder=self.decoder,
                            rng=rng, short_clip=self.short_clip, num_threads=self.num_threads)
        return clip.images()

    def __getstate__(self):
        return self.options()

    def __setstate__(self, state):
        for name in self.__slots__:
            setattr(self, name, state[name])

    def __eq__(self, other) -> bool:
        return isinstance(other, VideoDecoder) and self.options() == other.options()

    def __hash__(self) -> int:
        return hash(tuple(self.options().items()))

    def __repr__(self) -> str:
        return "VideoDecoder(" + ", ".join(f"{key}={value!r}" for key, value in self.options().items()) + ")"

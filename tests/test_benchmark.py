"""The benchmark harness on a tiny synthetic benchmark written here: RICES retrieves the planted
neighbours and excludes the planted duplicate, the oracle backend makes the tables exact (cheat
100 %, 0-shot 0 %, RICES 100 %), scorers, the judge over a loopback server, a VLMEvalKit TSV, and
one real 2-shot generation through a tiny random LLaVA and Idefics3."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from downstream_helpers import EOV, _class_tile, write_tinybench

from textbook.benchmark import scoring
from textbook.benchmark.backends import HFBackend, OracleBackend
from textbook.benchmark.data import load_split
from textbook.benchmark.demos import DemoPool, pixel_embedding, select
from textbook.benchmark.harness import BenchConfig, evaluate
from textbook.benchmark.prompts import build_prompt
from textbook.benchmark.results import headline, markdown, results_json, table2, table4
from textbook.benchmark.tasks import TASKS

TASKS3 = ("okvqa", "scienceqa_img", "mathvista")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("tinybench")
    return root, write_tinybench(root)


@pytest.fixture(scope="module")
def oracle_scores(bench, tmp_path_factory):
    root, _ = bench
    cfg = BenchConfig(data_root=str(root), tasks=TASKS3, shots=(0, 1, 2, 4, 8),
                      modes=("rices", "random", "cheat", "shuffled_context"), backend="oracle")
    out = tmp_path_factory.mktemp("oracle")
    return cfg, evaluate("oracle", OracleBackend(pixel_embedding), cfg, out, echo=lambda s: None), out


def test_rices_retrieves_same_class_neighbours_most_similar_last_and_never_the_query(bench):
    root, planted = bench
    queries, pool = load_split(root, "okvqa", "test"), DemoPool(load_split(root, "okvqa", "train"), pixel_embedding)
    query = next(q for q in queries if q.id == planted["duplicate_of"])
    demos = pool.rices(query, 2)
    assert [d.answer for d in demos] == [query.answer] * 2  # the planted same-class neighbours
    assert planted["planted"] not in [d.id for d in pool.rices(query, 8)]  # byte-identical image excluded
    sims = [float(pixel_embedding(d.image) @ pixel_embedding(query.image)) for d in pool.rices(query, 4)]
    assert sims == sorted(sims)  # most similar next to the query
    for q in queries:
        assert q.image_sha not in {d.image_sha for d in select(pool, q, 8, "random", seed=3)}
    cheat = select(pool, query, 2, "cheat", seed=3)
    assert cheat[0] is query and cheat[1].id != query.id
    assert select(pool, query, 2, "cheat", seed=3, cheat_second="rices")[1].id == demos[-1].id


def test_prompt_has_one_image_per_demo_plus_the_query(bench):
    root, _ = bench
    q = load_split(root, "scienceqa_img", "test")[0]
    demos = load_split(root, "scienceqa_img", "train")[:2]
    p = build_prompt(q, demos, TASKS["scienceqa_img"])
    assert p.images == (str(demos[0].image), str(demos[1].image), str(q.image))
    text = p.joined("<image>")
    assert text.count("<image>") == 3 and text.endswith("directly. Answer:")
    assert f"Answer: {demos[0].answer}\n" in text and "A. red" in text
    assert len(build_prompt(q, [], TASKS["scienceqa_img"]).images) == 1
    assert p.digest == build_prompt(q, demos, TASKS["scienceqa_img"]).digest


def test_oracle_tables_are_exact(oracle_scores):
    cfg, scores, out = oracle_scores
    cell = {(s.task, s.shots, s.mode): s.value for s in scores}
    for task in TASKS3:
        assert cell[(task, 0, "zero")] == 0.0
        for k in (1, 2, 4, 8):
            assert cell[(task, k, "cheat")] == 100.0
            assert cell[(task, k, "rices")] == 100.0
            assert cell[(task, k, "shuffled_context")] == 100.0
    assert min(cell[(t, 1, "random")] for t in TASKS3) < 100.0
    t2, t4 = table2(scores), table4(scores)
    assert t2["rows"]["oracle"]["avg@0"] == 0.0 and t2["rows"]["oracle"]["avg@4"] == 100.0
    assert t4["tasks"] == ["okvqa", "mathvista"] and t4["rows"]["oracle"] == {
        "okvqa@1": 100.0, "mathvista@1": 100.0, "okvqa@2": 100.0, "mathvista@2": 100.0}
    md = markdown(t2, "Table 2")
    assert "Textbook (paper), not reproduced here" in md and "| oracle | 0.0 |" in md
    print(md, markdown(t4, "Table 4"), sep="\n")
    assert headline(scores, "oracle") == {"avg_by_shot": {"0": 0.0, "1": 100.0, "2": 100.0, "4": 100.0, "8": 100.0},
                                          "cheat_1shot_avg": 100.0}
    res = results_json("oracle", scores, cfg, {"run_id": "r"})
    assert res["results"]["okvqa"]["accuracy,rices_2shot"] == 100.0
    assert res["results"]["mathvista"]["scorer,rices_2shot"] == "rule"
    assert res["versions"]["okvqa"] and res["n-samples"]["okvqa"]["effective"] == 12
    assert set(res) >= {"results", "configs", "versions", "n-shot", "higher_is_better", "n-samples"}
    sample = json.loads((out / "samples" / "oracle" / "samples_okvqa_2shot_cheat.jsonl").read_text().splitlines()[0])
    assert sample["demo_ids"][0] == sample["doc_id"] and sample["score"] == 1.0


def test_a_rerun_skips_written_items(oracle_scores):
    cfg, scores, out = oracle_scores
    calls = []

    class Counting(OracleBackend):
        def generate(self, prompt, max_new_tokens):
            calls.append(prompt.query.id)
            return super().generate(prompt, max_new_tokens)

    again = evaluate("oracle", Counting(pixel_embedding), cfg, out, echo=lambda s: None)
    assert calls == [] and [s.value for s in again] == [s.value for s in scores]


def test_scorers():
    assert scoring.normalize_answer("Two dogs!") == "2 dogs" and scoring.normalize_answer("a dog") == "dog"
    assert scoring.vqa_accuracy("dog", ["dog"] * 10) == 1.0
    assert scoring.vqa_accuracy("dog", ["dog", "dog"] + ["cat"] * 8) == pytest.approx(0.6)
    assert scoring.vqa_accuracy("cat", ["dog"] * 10) == 0.0
    assert scoring.mc_score("B", "B", 4)[0] == 1.0 and scoring.mc_score("B. square", "B", 4)[0] == 1.0
    assert scoring.mc_score("The answer is C.", "C", 4)[0] == 1.0
    assert scoring.mc_score("I think (B)", "B", 4) == (0.0, None)  # FAILED: wrong, never guessed
    assert scoring.rule_math_score("3.0", "3", None) == 1.0 and scoring.rule_math_score("4", "3", None) == 0.0
    assert scoring.rule_math_score("B", "12", ("10", "12")) == 1.0


class _FakeJudge(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        text = body["messages"][0]["content"]
        pred = text.split("Predicted Answer: ")[1].split("\n")[0]
        gold = text.split("Labeled Answer: ")[1].split("\n")[0]
        data = json.dumps({"choices": [{"message": {"content": f"###judge: {pred == gold}"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass


def test_judge_scores_math_at_temperature_zero_and_caches_verdicts(bench, tmp_path):
    root, _ = bench
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = BenchConfig(data_root=str(root), tasks=("mathvista",), shots=(1,), modes=("cheat",), backend="oracle",
                          judge_endpoint=f"http://127.0.0.1:{server.server_port}/v1", judge_model="fake-judge")
        first = evaluate("m", OracleBackend(pixel_embedding), cfg, tmp_path / "a", echo=lambda s: None)
        n = len(_FakeJudge.requests)
        assert first[0].value == 100.0 and first[0].scorer == "judge:fake-judge"
        assert n == 4  # one call per distinct (prediction, gold): four dot counts
        assert {r["temperature"] for r in _FakeJudge.requests} == {0}
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "judge_cache.json").write_bytes((tmp_path / "a" / "judge_cache.json").read_bytes())
        evaluate("m", OracleBackend(pixel_embedding), cfg, tmp_path / "b", echo=lambda s: None)
        assert len(_FakeJudge.requests) == n  # every verdict came from the cache
    finally:
        server.shutdown()


def test_a_vlmevalkit_tsv_is_read_with_its_base64_images(tmp_path):
    buf = io.BytesIO()
    _class_tile(2, 0).save(buf, format="JPEG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    (tmp_path / "scienceqa_img").mkdir()
    (tmp_path / "scienceqa_img" / "test.tsv").write_text(
        "index\timage\tquestion\thint\tA\tB\tanswer\n7\t" + b64 + "\tWhich?\tnan\tblue\tred\tA\n")
    [item] = load_split(tmp_path, "scienceqa_img", "test")
    assert (item.id, item.choices, item.answer, item.question) == ("7", ("blue", "red"), "A", "Which?")
    assert item.image.read_bytes() == buf.getvalue()


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_one_real_two_shot_generation_through_a_tiny_model(bench, tmp_path, family):
    from textbook.train.tiny import build_tiny

    root, _ = bench
    model = build_tiny(family, tmp_path / "tiny", ["What colour is the tile? Answer: red"] * 3, [EOV])
    cfg = BenchConfig(data_root=str(root), tasks=("okvqa",), shots=(2,), modes=("rices",), max_items=1,
                      max_new_tokens=4)
    [score] = evaluate("tiny", HFBackend(model), cfg, tmp_path / "out", echo=lambda s: None)
    assert score.n == 1 and score.value is not None and score.scorer == "vqa"
    row = json.loads((tmp_path / "out" / "samples" / "tiny" / "samples_okvqa_2shot_rices.jsonl").read_text())
    assert len(row["demo_ids"]) == 2 and isinstance(row["prediction"], str)


def test_the_shuffle_ablation_plot_has_one_point_per_ratio(tmp_path):
    from textbook.config import load_settings
    from textbook.downstream import ablation_plot

    settings = load_settings(environ={}, data_root=str(tmp_path))
    out = ablation_plot(settings, [{"ratio": 0.0, "avg_by_shot": {"0": 10.0, "1": 30.0}},
                                   {"ratio": 1.0, "avg_by_shot": {"0": 10.0, "1": 10.0}}])
    assert out["points"] == {0.0: 20.0, 1.0: 10.0}
    assert Path(out["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((Path(out["plot"]).parent / "shuffle_ablation.json").read_text()) == {"0.0": 20.0, "1.0": 10.0}

"""`make demo`'s loader acts show what issue 25 promises: equal ranks, a shuffled one-object dataset, offline reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from reconciler.dev import demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_the_demo_shows_equal_ranks_a_shuffled_object_and_reads_with_s3_stopped(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the demo runs from the repository root, with its specs
    assert demo.main(["--data", str(tmp_path / "demo-data")]) == 0
    out = capfd.readouterr().out
    acts = out.split("Training-grade reads:")[1].split("The training-data service")[0]

    # 2 ranks x 2 worker processes: each rank's count known before its first record, equal across ranks,
    # its workers within one record of each other, and only the remainder over the ranks left out.
    heading = re.search(r"cot_reasoning/\*\.jsonl: (\d+) records; 2 ranks x 2 DataLoader", acts)
    assert heading is not None
    total = int(heading[1])
    ranks = re.findall(r"rank (\d): len\(ds\) = (\d+) before the first record; "
                       r"its workers yielded (\d+) \+ (\d+) = (\d+)", acts)
    assert [r[0] for r in ranks] == ["0", "1"]
    counts = {int(planned) for _, planned, _, _, _ in ranks} | {int(got) for *_, got in ranks}
    assert len(counts) == 1
    (per_rank,) = counts
    assert all(abs(int(a) - int(b)) <= 1 and int(a) + int(b) == per_rank for _, _, a, b, _ in ranks)
    assert 0 <= total - 2 * per_rank < 2 and per_rank > 0
    assert f'partition="drop" left out {total - 2 * per_rank} record(s)' in acts

    # One object, shuffled: every seed a permutation of the file order, two seeds two different orders.
    found = re.search(r"priority_mix \(one object\): file order (\[.*?\]); shuffle=True seed=1 (\[.*?\]), "
                      r"seed=4 (\[.*?\])", acts)
    assert found is not None
    plain, one, four = (ast.literal_eval(group) for group in found.groups())
    assert sorted(one) == sorted(four) == plain and len(plain) > 1
    assert one != four and plain != one

    # S3 stopped: the warm dataset is read from the verified cache, offline and online (with a warning);
    # the never-read one fails naming its object; then the server is back for the rest of the demo.
    offline = acts.split("The S3 server is stopped now")[1]
    assert "offline=True  priority_mix: [0, 1, 2] from the verified cache" in offline
    assert "S3 down, offline=False, priority_mix: [0, 1, 2], with" in offline
    assert "OfflineWarning: S3 is unreachable (...)" in offline
    assert re.search(r"NotCachedOffline: pixel-data:\S+/counseling_dialogues\.jsonl: offline, and there is no "
                     r"verified copy in the cache", offline)
    assert "The S3 server is back." in offline
    assert '"actor_id": 42' in out.split("The S3 server is back.")[1]  # the service act after it still reads S3
    assert re.search(r"Demo complete in \d+ s; the S3 server is stopped", out)

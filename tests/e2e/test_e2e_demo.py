"""scripts/demo.py run as a user runs it: every patient of every policy pack answered, the pack
that decided named, both servers stopped at the end."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cds_service.policy.lint import lint_pack
from cds_service.policy.packs import default_registry
from sandbox.fhir_sandbox import npm_available
from sandbox.scenarios import Scenario, load_all_scenarios
from sandbox.service import REPO_ROOT

DEMO = REPO_ROOT / "scripts" / "demo.py"
SCENARIOS = load_all_scenarios()


def _processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _blocks(out: str) -> dict[str, str]:
    """The printed block of each patient, by scenario name."""
    parts = re.split(r"^== (\S+) \(Patient/[^)]+\)$", out, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _lints_clean(policy_id: str) -> bool:
    pack = default_registry().packs[policy_id]
    return not [f for f in lint_pack(pack.directory) if f.severity == "error"]


@pytest.fixture(scope="module")
def demo_run() -> tuple[str, str]:
    """(stdout, the marker in the environment of every process the demo started)."""
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs Linux /proc")
    if not npm_available():
        pytest.skip("npm is not installed: no FHIR sandbox")
    marker = f"E2E_DEMO_RUN={uuid.uuid4()}"
    key, _, value = marker.partition("=")
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [sys.executable, str(DEMO)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, key: value},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, marker


def test_the_demo_answers_every_patient_of_every_pack_and_stops(
    demo_run: tuple[str, str],
) -> None:
    out, marker = demo_run
    assert "authentication is OFF" in out
    blocks = _blocks(out)
    assert list(blocks) == [s.name for s in SCENARIOS]
    decided_by = set()
    for name, block in blocks.items():
        pack = re.search(r"^   pack:     (\S+) version \S+$", block, flags=re.MULTILINE)
        assert pack, f"{name}: no pack named\n{block}"
        assert re.search(r"^   outcome:  \S", block, flags=re.MULTILINE), block
        decided_by.add(pack.group(1))
    assert decided_by == set(default_registry().packs)
    assert out.rstrip().endswith("servers stopped")
    assert _processes_with(marker) == []


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_each_patient_gets_the_outcome_its_description_gives(
    demo_run: tuple[str, str], scenario: Scenario
) -> None:
    block = _blocks(demo_run[0])[scenario.name]
    pack = re.search(r"^   pack:     (\S+) ", block, flags=re.MULTILINE)
    assert pack
    if not _lints_clean(pack.group(1)):
        pytest.skip(f"pack {pack.group(1)} does not lint clean yet")
    assert f"   outcome:  {scenario.expected_outcome}  [" in block
    flagged = re.search(r"^   criteria: (.*)$", block, flags=re.MULTILINE)
    items = flagged.group(1).split(", ") if flagged else []
    statuses = dict(tuple(item.rsplit(" ", 1)) for item in items)
    assert {c for c, s in statuses.items() if s == "not-met"} == scenario.expected_not_met
    assert {c for c, s in statuses.items() if s == "unknown"} == scenario.expected_unknown


def test_the_combination_card_and_its_suggestion_are_printed(demo_run: tuple[str, str]) -> None:
    block = _blocks(demo_run[0])["ra-active-adalimumab"]
    assert "outcome:  criteria-not-met" in block
    assert "[critical] Kineret with adalimumab" in block
    assert "suggestions: Remove this Kineret order" in block


def test_patients_can_be_chosen_one_by_one() -> None:
    spec = importlib.util.spec_from_file_location("demo_script", DEMO)
    assert spec
    assert spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    names = [s.name for s in SCENARIOS]
    args = demo.parse_args(["--patient", names[0], "--patient", names[-1]], names)
    assert args.patient == [names[0], names[-1]]
    with pytest.raises(SystemExit):
        demo.parse_args(["--patient", "no-such-patient"], names)

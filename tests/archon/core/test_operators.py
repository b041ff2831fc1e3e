"""The operator kit: references found by type, declared cost growth, kind registries, entry points."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel, Field

from archon.core import EngineRef, OperatorParams, RetrieverRef, VerifierRef
from archon.core.operators import references, repair_factors
from archon.core.registry import Kinds, PluginError, Registry, UnknownOperatorError, load_entry_points


class Judge(BaseModel):
    by: VerifierRef
    weight: float = 1.0


class Panel(OperatorParams):
    cost_growth: ClassVar[Mapping[str, float]] = {"n": 1.0, "width": 0.5}
    writer: EngineRef
    judges: list[VerifierRef] = Field(default_factory=list)
    panel: list[Judge] = Field(default_factory=list)
    lead: Judge | None = None
    sources: dict[str, RetrieverRef] = Field(default_factory=dict)
    fallback: EngineRef | None = None
    n: int = 4
    width: int = 2


def test_references_are_found_by_type_in_nested_models_lists_and_dicts():
    values = {
        "writer": "big",
        "judges": ["prm", "orm"],
        "panel": [{"by": "steps"}, {"by": "certainty", "weight": 2.0}],
        "lead": {"by": "prm"},
        "sources": {"wiki": "bm25"},
        "n": 8,
    }
    found = [(r.path, r.section, r.name) for r in references(Panel, values)]
    assert found == [
        (("writer",), "engines", "big"),
        (("judges", 0), "verifiers", "prm"),
        (("judges", 1), "verifiers", "orm"),
        (("panel", 0, "by"), "verifiers", "steps"),
        (("panel", 1, "by"), "verifiers", "certainty"),
        (("lead", "by"), "verifiers", "prm"),
        (("sources", "wiki"), "retrievers", "bm25"),
    ]
    tuned = references(Panel, {"writer": ("a", "b")}, expand=lambda v: list(v) if isinstance(v, tuple) else [v])
    assert [r.name for r in tuned] == ["a", "b"]  # a tuned value stands for each of its choices
    assert references(Panel, {"writer": 3, "judges": "prm"}) == []  # wrong shapes are the model's to refuse


def test_cost_growth_is_checked_when_the_params_class_is_defined():
    with pytest.raises(TypeError, match="'beams' is not one of its params"):

        class Bad(OperatorParams):
            cost_growth: ClassVar[Mapping[str, float]] = {"beams": 1.0}
            n: int = 1

    with pytest.raises(TypeError, match="must be > 0"):

        class Flat(OperatorParams):
            cost_growth: ClassVar[Mapping[str, float]] = {"n": 0.0}
            n: int = 1


def test_repair_factors_follow_the_declared_growth():
    assert repair_factors({"n": 1.0}, ["n"], 0.25) == {"n": 0.25}
    both = repair_factors({"n": 1.0, "width": 1.0}, ["n", "width"], 0.25)
    assert both == pytest.approx({"n": 0.5, "width": 0.5})  # n * width: the square root each
    only_n = repair_factors({"n": 1.0, "width": 1.0}, ["n"], 0.25)  # width fixed in the spec: n takes it all
    assert only_n == {"n": 0.25}
    assert repair_factors(Panel.cost_growth, ["n", "width"], 0.125) == pytest.approx(
        {"n": 0.125 ** (1 / 1.5), "width": 0.125 ** (1 / 1.5)}
    )
    assert repair_factors({"n": 1.0}, ["temperature"], 0.5) == {}


def test_params_refuse_unknown_keys_and_registries_refuse_other_models():
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Panel(writer="w", beams=3)
    reg = Registry()
    with pytest.raises(TypeError, match="OperatorParams subclass"):
        reg.register("plain", Judge)  # type: ignore[arg-type]


def test_kinds_registry_suggests_and_refuses_a_second_builder():
    kinds: Kinds = Kinds("engine")
    kinds.add("local", lambda config: "a")
    kinds.add("local", kinds.get("local").build)  # the same builder again is fine
    with pytest.raises(ValueError, match="registered twice"):
        kinds.add("local", lambda config: "b")
    with pytest.raises(UnknownOperatorError, match="unknown engine kind 'locl'; did you mean 'local'"):
        kinds.get("locl")


def test_a_broken_plugin_entry_point_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[archon.operators]\nbroken = no_such_module_anywhere\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    with pytest.raises(PluginError) as err:
        load_entry_points(("archon.operators",))
    assert "broken = no_such_module_anywhere (archon.operators)" in str(err.value)
    assert "\n" not in str(err.value)

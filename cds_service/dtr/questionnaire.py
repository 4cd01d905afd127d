"""A pack's documentation template: one FHIR R4 Questionnaire generated from its criteria.

Layout (linkIds, which the prepopulation and the answer reader rely on):

    indication                      choice: the pack's indications (+ "other")
    pathway                         choice: initial / continued
    <pathway>                       group, enabled by the pathway answer
      <section id>                  group, enabled by the indication answer
        <criterion id>              group: one per criterion the prescriber can document
          <criterion id>/about      display: what the plan asks for (policy.yaml documentation)
          <criterion id>/<shape>    group of one record shape (below)
    common                          group: the pack's common criteria, each enabled by the
      <criterion id>                indications of the sections it applies to

A combinator's sub-checks nest as `<criterion id>/<n>/<shape>`, a `by_indication` variant as
`<criterion id>/<indication>/<shape>` (enabled by its indication). The record shapes are
generic (a drug trial, an intolerance, a measurement, a body weight, a birth date, a
specialty, a diagnosis, a gene result, episodes of a condition, a response assessment, the
care setting, a stopped therapy, a condition ruled out, evidence for review): which shape a
criterion gets is chosen by its check kind and parameters, never by drug or criterion id.
Each shape's fields are `<shape path>/<field>`; `fhir_mappings.questionnaire_answers` reads
them back by shape and field alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds_service.dtr import valuesets as vs
from cds_service.dtr.urls import fhir_base, questionnaire_id, questionnaire_url
from cds_service.policy.definition import CriterionDef, Policy, SectionDef
from cds_service.policy.packs import Pack

SDC_QUESTIONNAIRE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
QUESTIONNAIRE_UNIT_OPTION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption"
ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"

NOT_DOCUMENTABLE = frozenset({"not-covered"})
"""Checks the prescriber cannot change by documenting: always not-met."""

OTHER_INDICATION = "other"


@dataclass(frozen=True)
class Context:
    """What every item builder needs: where ValueSets live and which ones were named."""

    public_base_url: str
    wanted: dict[tuple[str, ...], None]
    """ValueSet names tuples used so far (ordered set), for the package."""

    def answer_set(self, names: Sequence[str]) -> str:
        key = tuple(names)
        self.wanted.setdefault(key, None)
        return vs.valueset_url(self.public_base_url, key)


# ----- small item makers --------------------------------------------------------------------


def _item(link: str, text: str, kind: str, **more: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": link, "text": text, "type": kind}
    item.update({k: v for k, v in more.items() if v is not None})
    return item


def _coded(code: str, display: str, system: str = LOINC) -> list[dict[str, str]]:
    return [{"system": system, "code": code, "display": display}]


def _options(*words: str) -> list[dict[str, Any]]:
    return [{"valueString": w} for w in words]


def _quantity(
    link: str, text: str, units: Sequence[tuple[str, str]], **more: Any
) -> dict[str, Any]:
    item = _item(link, text, "quantity", **more)
    item["extension"] = [
        {"url": QUESTIONNAIRE_UNIT_OPTION, "valueCoding": {"system": UCUM, "code": c, "display": d}}
        for c, d in units
    ]
    return item


MG = [("mg", "mg")]
LAB_UNITS = [("mg/L", "mg/L"), ("mg/dL", "mg/dL")]
WEIGHT_UNITS = [("kg", "kg"), ("[lb_av]", "lb")]

REASONS_STOPPED = _options(
    "Not effective (failure)", "Adverse effect", "Still taking", "Other reason"
)
INTOLERANCE_KINDS = _options("Allergy", "Intolerance (adverse effect)", "Contraindication")
TEST_RESULTS = _options("Negative", "Positive", "Indeterminate")
VARIANT_CLASSES = _options(
    "Pathogenic",
    "Likely pathogenic",
    "Uncertain significance",
    "Likely benign",
    "Benign",
    "No variant found",
)
RESPONSES = _options("Improved", "Unchanged", "Worse")


def trial(ctx: Context, path: str, names: Sequence[str], what: str) -> dict[str, Any]:
    p = f"{path}/trial"
    return _item(
        p,
        f"Trial of {what}",
        "group",
        repeats=True,
        item=[
            _item(
                f"{p}/drug", "Drug", "choice", required=True, answerValueSet=ctx.answer_set(names)
            ),
            _item(f"{p}/start", "Start date", "date", required=True),
            _item(f"{p}/end", "End date (empty: still taking)", "date"),
            _quantity(f"{p}/dose", "Dose per administration", MG),
            _item(f"{p}/frequency", "How often (e.g. once weekly)", "string"),
            _item(f"{p}/reason-stopped", "Reason stopped", "choice", answerOption=REASONS_STOPPED),
        ],
    )


def intolerance(ctx: Context, path: str, names: Sequence[str], what: str) -> dict[str, Any]:
    p = f"{path}/intolerance"
    return _item(
        p,
        f"Intolerance or contraindication to {what}",
        "group",
        repeats=True,
        item=[
            _item(
                f"{p}/drug", "Drug", "choice", required=True, answerValueSet=ctx.answer_set(names)
            ),
            _item(f"{p}/kind", "Kind", "choice", required=True, answerOption=INTOLERANCE_KINDS),
            _item(f"{p}/description", "What happened, or why it is contraindicated", "text"),
            _item(f"{p}/date", "Date noted", "date"),
        ],
    )


def measurement(
    ctx: Context, path: str, kinds: Sequence[str], what: str, units: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    p = f"{path}/measurement"
    value = (
        _quantity(f"{p}/value", "Value", units, required=True)
        if units
        else _item(f"{p}/value", "Value", "decimal", required=True)
    )
    return _item(
        p,
        what,
        "group",
        repeats=True,
        item=[
            _item(
                f"{p}/test", "Test", "choice", required=True, answerValueSet=ctx.answer_set(kinds)
            ),
            value,
            _item(f"{p}/date", "Date", "date", required=True),
        ],
    )


def test_result(ctx: Context, path: str, kinds: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/test-result"
    return _item(
        p,
        "Screening test",
        "group",
        repeats=True,
        item=[
            _item(
                f"{p}/test", "Test", "choice", required=True, answerValueSet=ctx.answer_set(kinds)
            ),
            _item(f"{p}/result", "Result", "choice", required=True, answerOption=TEST_RESULTS),
            _item(f"{p}/date", "Date", "date", required=True),
        ],
    )


def body_weight(path: str) -> dict[str, Any]:
    p = f"{path}/body-weight"
    return _item(
        p,
        "Body weight",
        "group",
        code=_coded("29463-7", "Body weight"),
        item=[
            _quantity(
                f"{p}/value",
                "Weight",
                WEIGHT_UNITS,
                required=True,
                code=_coded("29463-7", "Body weight"),
            ),
            _item(f"{p}/date", "Date measured", "date", required=True),
        ],
    )


def birth_date(path: str) -> dict[str, Any]:
    p = f"{path}/birth-date"
    return _item(
        p,
        "Birth date",
        "group",
        item=[
            _item(
                f"{p}/value",
                "Date of birth",
                "date",
                required=True,
                code=_coded("21112-8", "Birth date"),
            )
        ],
    )


def specialty(ctx: Context, path: str, names: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/specialty"
    return _item(
        p,
        "Specialist prescribing or consulted",
        "group",
        item=[
            _item(
                f"{p}/specialty",
                "Specialty",
                "choice",
                required=True,
                answerValueSet=ctx.answer_set(names),
            ),
            _item(
                f"{p}/role",
                "Who",
                "choice",
                required=True,
                answerOption=_options("The prescriber", "A consulting specialist"),
            ),
            _item(f"{p}/name", "Specialist's name", "string"),
            _item(f"{p}/date", "Date of the consultation or referral", "date"),
        ],
    )


def diagnosis(ctx: Context, path: str, names: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/diagnosis"
    return _item(
        p,
        "Diagnosis",
        "group",
        item=[
            _item(
                f"{p}/code",
                "Diagnosis",
                "choice",
                required=True,
                answerValueSet=ctx.answer_set(names),
            ),
            _item(
                f"{p}/confirmed", "Confirmed (not a working diagnosis)", "boolean", required=True
            ),
            _item(f"{p}/date", "Date of diagnosis", "date"),
        ],
    )


def gene_result(path: str, gene: str) -> dict[str, Any]:
    p = f"{path}/gene-result"
    return _item(
        p,
        f"Genetic test ({gene})",
        "group",
        item=[
            _item(
                f"{p}/gene",
                "Gene",
                "string",
                required=True,
                readOnly=True,
                initial=[{"valueString": gene}],
            ),
            _item(
                f"{p}/classification",
                "Variant classification",
                "choice",
                required=True,
                answerOption=VARIANT_CLASSES,
            ),
            _item(f"{p}/date", "Report date", "date", required=True),
        ],
    )


def classification_score(path: str, threshold: float | None) -> dict[str, Any]:
    p = f"{path}/classification-score"
    words = f" (at least {threshold:g} classifies)" if threshold is not None else ""
    return _item(
        p,
        "Classification criteria score" + words,
        "group",
        item=[
            _item(f"{p}/value", "Total score", "decimal", required=True),
            _item(f"{p}/date", "Date", "date"),
        ],
    )


def episodes(ctx: Context, path: str, names: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/episode"
    return _item(
        p,
        f"Episodes of {_titles(names)} (one per episode)",
        "group",
        repeats=True,
        item=[
            _item(
                f"{p}/condition",
                "Diagnosis",
                "choice",
                required=True,
                answerValueSet=ctx.answer_set(names),
            ),
            _item(f"{p}/start", "Start date", "date", required=True),
            _item(f"{p}/end", "Symptom-free from", "date"),
        ],
    )


def response(path: str, kind: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/response"
    return _item(
        p,
        "Response to the current therapy",
        "group",
        code=vs.codes_or_name(kind),
        item=[
            _item(f"{p}/assessment", "Response", "choice", required=True, answerOption=RESPONSES),
            _item(f"{p}/date", "Date assessed", "date", required=True),
            _item(f"{p}/notes", "What improved (pain, swelling, CRP, daily living)", "text"),
        ],
    )


def setting(path: str) -> dict[str, Any]:
    p = f"{path}/setting"
    return _item(
        p,
        "Care setting",
        "group",
        item=[
            _item(
                f"{p}/admitted", "The patient is hospitalized (admitted)", "boolean", required=True
            ),
            _item(f"{p}/date", "Admission date", "date"),
        ],
    )


def stopped_therapy(ctx: Context, path: str, names: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/stopped-therapy"
    return _item(
        p,
        "Other therapy stopped",
        "group",
        repeats=True,
        item=[
            _item(
                f"{p}/drug", "Drug", "choice", required=True, answerValueSet=ctx.answer_set(names)
            ),
            _item(f"{p}/date", "Stop date", "date", required=True),
        ],
    )


def condition_status(ctx: Context, path: str, names: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/condition-status"
    return _item(
        p,
        "Condition ruled out or resolved",
        "group",
        item=[
            _item(f"{p}/condition", "Condition", "choice", answerValueSet=ctx.answer_set(names)),
            _item(f"{p}/resolved", "Ruled out, or treated and resolved", "boolean", required=True),
            _item(f"{p}/date", "Date", "date"),
        ],
    )


def current_therapy(ctx: Context, path: str, names: Sequence[str]) -> dict[str, Any]:
    p = f"{path}/current-therapy"
    return _item(
        p,
        "Current therapy",
        "group",
        item=[
            _item(
                f"{p}/drug", "Drug", "choice", required=True, answerValueSet=ctx.answer_set(names)
            ),
            _item(f"{p}/start", "First dose", "date", required=True),
            _item(f"{p}/last", "Latest dose", "date"),
        ],
    )


def dose(path: str, *, current: bool) -> dict[str, Any]:
    p = f"{path}/dose"
    fields = [
        _quantity(f"{p}/amount", "New dose per administration", MG, required=True),
        _item(f"{p}/interval-days", "Days between administrations", "integer", required=True),
    ]
    if current:
        fields.append(_quantity(f"{p}/current", "Current dose per administration", MG))
    return _item(p, "Dose of this order", "group", item=fields)


HYPERSENSITIVITY_QUESTION = "Known hypersensitivity to the product or its source proteins"


def allergy_history(path: str) -> dict[str, Any]:
    p = f"{path}/allergy-history"
    return _item(
        p,
        "Allergy history",
        "group",
        item=[
            _item(f"{p}/known", HYPERSENSITIVITY_QUESTION, "boolean", required=True),
            _item(f"{p}/details", "Details", "text"),
        ],
    )


def evidence(path: str) -> dict[str, Any]:
    p = f"{path}/evidence"
    return _item(
        p,
        "Documentation",
        "group",
        item=[
            _item(f"{p}/rationale", "Clinical rationale and evidence", "text", required=True),
            _item(f"{p}/attachment", "Supporting document", "attachment"),
        ],
    )


# ----- shapes per check kind -----------------------------------------------------------------

Params = Mapping[str, Any]
Items = list[dict[str, Any]]
Shapes = Callable[[Context, str, Params, "PackWords"], Items]


@dataclass(frozen=True)
class PackWords:
    """Pack words the shapes use: the drug's own value set name and label."""

    drug: str
    label: str


def _names(params: Mapping[str, Any], key: str) -> list[str]:
    value = params.get(key)
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _titles(names: Sequence[str]) -> str:
    return " or ".join(vs.title(n) for n in names)


WEIGHT_BOUNDS = ("min_weight_kg", "max_weight_kg", "over_weight_kg", "under_weight_kg")


def _weight_based(params: Mapping[str, Any]) -> bool:
    if params.get("mg_per_kg_per_day") or params.get("weight_based_syringes"):
        return True
    for band in params.get("bands") or ():
        if not isinstance(band, Mapping):
            continue
        if any(k in band for k in WEIGHT_BOUNDS):
            return True
        for dose_key in ("loading", "maintenance"):
            d = band.get(dose_key)
            if isinstance(d, Mapping) and "mg_per_kg" in d:
                return True
    return any(
        isinstance(params.get(k), Mapping) and "mg_per_kg" in params[k]
        for k in ("loading", "maintenance")
    )


def _first_line(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    first = _names(params, "first_line")
    alts = _names(params, "alternatives")
    return [
        trial(ctx, f"{p}/first-line", first, _titles(first)),
        intolerance(ctx, f"{p}/first-line", first, _titles(first)),
        trial(ctx, f"{p}/alternative", alts, _titles(alts)),
        intolerance(ctx, f"{p}/alternative", alts, _titles(alts)),
    ]


def _trial_or_intolerance(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    names = _names(params, "valuesets")
    what = str(params.get("label") or _titles(names))
    return [trial(ctx, p, names, what), intolerance(ctx, p, names, what)]


def _intolerance(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    names = _names(params, "valuesets")
    return [intolerance(ctx, p, names, _titles(names))]


def _scores(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    kinds = _names(params, "kinds")
    return [measurement(ctx, p, kinds, f"Score ({_titles(kinds)})")]


def _score_improved(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    kinds = _names(params, "primary") + _names(params, "alternative")
    what = f"Scores before {w.label} was started and since ({_titles(kinds)})"
    return [measurement(ctx, p, kinds, what)]


def _labs(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    kinds = _names(params, "kinds")
    return [measurement(ctx, p, kinds, f"Laboratory results ({_titles(kinds)})", LAB_UNITS)]


def _screening(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    items = [test_result(ctx, p, _names(params, "kinds"))]
    treated = _names(params, "treated_valuesets")
    if treated:
        items.append(trial(ctx, f"{p}/treatment", treated, _titles(treated)))
    return items


def _specialty(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [specialty(ctx, p, _names(params, "valuesets"))]


def _diagnosis(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    items = [diagnosis(ctx, p, _names(params, "valuesets"))]
    if params.get("confirm_by_gene"):
        items.append(gene_result(p, str(params["confirm_by_gene"])))
    if params.get("classification"):
        threshold = params.get("classification_threshold")
        items.append(classification_score(p, float(threshold) if threshold is not None else None))
    return items


def _age(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [birth_date(p)]


def _weight(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [body_weight(p)]


def _episodes(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [episodes(ctx, p, _names(params, "valuesets"))]


def _episode_on_drug(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    drug = _names(params, "drug_valuesets")
    items = [
        episodes(ctx, p, _names(params, "valuesets")),
        trial(ctx, f"{p}/first-line", drug, _titles(drug)),
    ]
    also = _names(params, "also_valuesets")
    if also:
        items.append(trial(ctx, f"{p}/also", also, _titles(also)))
    return items


def _findings(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    names = _names(params, "valuesets")
    q = f"{p}/findings"
    return [
        _item(
            q,
            str(params.get("label") or "Findings"),
            "group",
            item=[
                _item(
                    f"{q}/finding",
                    "Findings present (pick all)",
                    "choice",
                    required=True,
                    repeats=True,
                    answerValueSet=ctx.answer_set(names),
                ),
                _item(f"{q}/date", "Date noted", "date"),
            ],
        )
    ]


def _current(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    names = _names(params, "valuesets") or [w.drug]
    return [current_therapy(ctx, p, names)]


def _response(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [response(p, _names(params, "kind"))]


def _lab_improved(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return _labs(ctx, p, params, w)


def _new_episode(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [episodes(ctx, p, _names(params, "valuesets")), current_therapy(ctx, p, [w.drug])]


def _dose(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    items = [dose(p, current=False)]
    if _weight_based(params):
        items.append(body_weight(p))
    return items


def _dose_increase(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    items = [dose(p, current=True)]
    if _weight_based(params):
        items.append(body_weight(p))
    return items


def _combination(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [stopped_therapy(ctx, p, _names(params, "valuesets"))]


def _active_condition(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [condition_status(ctx, p, _names(params, "valuesets"))]


def _hypersensitivity(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [allergy_history(p)]


def _care_setting(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [setting(p)]


def _received(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [current_therapy(ctx, p, _names(params, "valuesets"))]


def _evidence(ctx: Context, p: str, params: Params, w: PackWords) -> Items:
    return [evidence(p)]


SHAPES: Mapping[str, Shapes] = {
    "first-line-step": _first_line,
    "trial-or-intolerance": _trial_or_intolerance,
    "intolerance-documented": _intolerance,
    "score-documented": _scores,
    "score-improved": _score_improved,
    "lab-threshold": _labs,
    "lab-improved": _lab_improved,
    "test-negative-within": _screening,
    "prescriber-specialty": _specialty,
    "diagnosis": _diagnosis,
    "minimum-age": _age,
    "minimum-weight": _weight,
    "condition-episodes": _episodes,
    "episode-while-on-drug": _episode_on_drug,
    "no-new-episode-since-start": _new_episode,
    "findings-count": _findings,
    "currently-receiving": _current,
    "drug-received-recently": _received,
    "positive-response": _response,
    "dose-limit": _dose,
    "dose-increase-limit": _dose_increase,
    "no-concurrent-therapy": _combination,
    "no-active-condition": _active_condition,
    "hypersensitivity": _hypersensitivity,
    "care-setting": _care_setting,
    "refer-to-policy": _evidence,
}
"""The record shapes each check kind asks for. A kind not listed gets `evidence` (free text
and a document), so every criterion that can be unknown has a place to answer it."""

COMBINATORS = frozenset({"any-of", "all-of"})


def check_items(
    ctx: Context, path: str, check: str, params: Mapping[str, Any], words: PackWords
) -> list[dict[str, Any]]:
    """The items that document one check; combinators nest one group per sub-check."""
    if check in COMBINATORS:
        out: list[dict[str, Any]] = []
        for n, sub in enumerate(params.get("checks") or (), start=1):
            sub_check = str(sub.get("check"))
            sub_params = sub.get("params") or {}
            sub_path = f"{path}/{n}"
            out.append(
                _item(
                    sub_path,
                    _sub_check_text(n, check),
                    "group",
                    item=check_items(ctx, sub_path, sub_check, sub_params, words),
                )
            )
        return out
    return SHAPES.get(check, _evidence)(ctx, path, params, words)


def _sub_check_text(n: int, combinator: str) -> str:
    letter = "abcdefghij"[n - 1] if n <= 10 else str(n)
    return f"({letter})" + (" one of these" if combinator == "any-of" and n == 1 else "")


# ----- the questionnaire ---------------------------------------------------------------------


def _about(path: str, words: str) -> dict[str, Any]:
    return _item(f"{path}/about", words, "display")


CHART_FINDING = "chart-finding"
"""The item of every criterion group that holds what the service found in the chart (the
prefilled answer, read-only); empty when the chart could not decide the criterion."""


def _finding(path: str) -> dict[str, Any]:
    return _item(f"{path}/{CHART_FINDING}", "What the chart shows", "string", readOnly=True)


def criterion_group(
    ctx: Context, criterion: CriterionDef, label: str, words: PackWords, indications: Sequence[str]
) -> dict[str, Any] | None:
    """The group documenting one criterion; None for a criterion nothing can document."""
    path = criterion.id
    children: list[dict[str, Any]] = [_about(path, criterion.documentation), _finding(path)]
    if criterion.by_indication:
        for indication, variant in criterion.by_indication.items():
            if indications and indication not in indications:
                continue
            vpath = f"{path}/{indication}"
            inner = check_items(ctx, vpath, variant.check, variant.params, words)
            if variant.check in NOT_DOCUMENTABLE or not inner:
                continue
            children.append(
                _item(
                    vpath,
                    variant.documentation or criterion.documentation,
                    "group",
                    enableWhen=[_indication_is(indication)],
                    item=inner,
                )
            )
        if len(children) == 2:
            return None
    else:
        if criterion.check in NOT_DOCUMENTABLE:
            return None
        children.extend(check_items(ctx, path, criterion.check, criterion.params, words))
    return _item(path, f"{criterion.id}: {label}", "group", item=children)


def _indication_is(name: str) -> dict[str, Any]:
    return {"question": "indication", "operator": "=", "answerCoding": {"system": "", "code": name}}


def _label(pack: Pack, criterion: CriterionDef) -> str:
    words = pack.card_texts.label(criterion.id, "") or criterion.text
    return words[:1].upper() + words[1:]


def indication_system(public_base_url: str, pack_id: str) -> str:
    """The code system of the `indication` answers (the pack's indication names)."""
    return f"{fhir_base(public_base_url)}/CodeSystem/{pack_id}-indication"


PATHWAY_SYSTEM_SUFFIX = "pathway"


def pathway_system(public_base_url: str) -> str:
    return f"{fhir_base(public_base_url)}/CodeSystem/{PATHWAY_SYSTEM_SUFFIX}"


def _fix_systems(items: Iterable[dict[str, Any]], indication_sys: str) -> None:
    for item in items:
        for cond in item.get("enableWhen", ()):
            coding = cond.get("answerCoding")
            if isinstance(coding, dict) and coding.get("system") == "":
                coding["system"] = indication_sys
        _fix_systems(item.get("item", ()), indication_sys)


def _section_group(
    ctx: Context, pack: Pack, section: SectionDef, words: PackWords
) -> dict[str, Any] | None:
    groups = [
        g
        for c in section.criteria
        if (g := criterion_group(ctx, c, _label(pack, c), words, section.indications)) is not None
    ]
    if not groups:
        return None
    return _item(
        f"{section.pathway.value}/{section.id}",
        f"Section {section.id}: {section.title}",
        "group",
        enableWhen=[_indication_is(i) for i in section.indications],
        enableBehavior="any" if len(section.indications) > 1 else None,
        item=groups,
    )


def _common_indications(policy: Policy, criterion: CriterionDef) -> list[str]:
    if not criterion.sections:
        return []
    names: dict[str, None] = {}
    for section in policy.sections:
        if section.id in criterion.sections:
            names.update(dict.fromkeys(section.indications))
    return list(names)


DIAGNOSIS_ID = "Diagnosis"
"""The criterion the engine adds when a section without a diagnosis criterion is claimed only
by a working or uncoded diagnosis (`cds_service.policy.engine.WORKING_DIAGNOSIS_ID`)."""


def _diagnosis_group(ctx: Context, pack: Pack, words: PackWords) -> dict[str, Any]:
    names = sorted({n for i in pack.policy.indications for n in i.valuesets})
    path = DIAGNOSIS_ID
    return _item(
        path,
        "Diagnosis: the diagnosis this order treats, confirmed and coded",
        "group",
        item=[
            _about(path, "The confirmed, coded diagnosis the order treats (chart notes)."),
            _finding(path),
            diagnosis(ctx, path, names),
        ],
    )


@dataclass(frozen=True)
class Generated:
    questionnaire: dict[str, Any]
    valuesets: tuple[tuple[str, ...], ...]
    """The answer lists it names (value set names of each ValueSet), for the package."""


def indication_options(pack: Pack, system: str) -> list[dict[str, Any]]:
    options = [
        {"valueCoding": {"system": system, "code": i.name, "display": i.title}}
        for i in pack.policy.indications
    ]
    options.append(
        {
            "valueCoding": {
                "system": system,
                "code": OTHER_INDICATION,
                "display": "Another diagnosis",
            }
        }
    )
    return options


PATHWAYS = (("initial", "Starting therapy"), ("continued", "Continuing current therapy"))


def generate(pack: Pack, public_base_url: str) -> Generated:
    """The pack's Questionnaire (FHIR R4, SDC): pure, from the pack's data alone."""
    policy = pack.policy
    ctx = Context(public_base_url, {})
    words = PackWords(drug=policy.drug, label=pack.card_texts.product)
    ind_system = indication_system(public_base_url, pack.id)
    path_system = pathway_system(public_base_url)
    top: list[dict[str, Any]] = [
        _item(
            "indication",
            f"What is {words.label} prescribed for?",
            "choice",
            required=True,
            answerOption=indication_options(pack, ind_system),
        ),
        _item(
            "pathway",
            "Is this a new start or continued therapy?",
            "choice",
            required=True,
            answerOption=[
                {"valueCoding": {"system": path_system, "code": code, "display": display}}
                for code, display in PATHWAYS
            ],
        ),
    ]
    for code, display in PATHWAYS:
        sections = [
            g
            for s in policy.sections
            if s.pathway.value == code and (g := _section_group(ctx, pack, s, words)) is not None
        ]
        if sections:
            top.append(
                _item(
                    code,
                    display,
                    "group",
                    enableWhen=[
                        {
                            "question": "pathway",
                            "operator": "=",
                            "answerCoding": {"system": path_system, "code": code},
                        }
                    ],
                    item=sections,
                )
            )
    common: list[dict[str, Any]] = [_diagnosis_group(ctx, pack, words)]
    for criterion in policy.common_criteria:
        indications = _common_indications(policy, criterion)
        group = criterion_group(ctx, criterion, _label(pack, criterion), words, indications)
        if group is None:
            continue
        if indications:
            group["enableWhen"] = [_indication_is(i) for i in indications]
            if len(indications) > 1:
                group["enableBehavior"] = "any"
        common.append(group)
    if common:
        top.append(_item("common", "Every indication", "group", item=common))
    _fix_systems(top, ind_system)
    date = f"{pack.effective}-01"
    questionnaire: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": questionnaire_id(pack.id),
        "meta": {"profile": [SDC_QUESTIONNAIRE]},
        "url": questionnaire_url(public_base_url, pack.id),
        "version": pack.version,
        "name": "".join(ch for ch in pack.id if ch.isalnum()) + "Documentation",
        "title": f"{pack.title}: prior authorization documentation ({pack.id})",
        "status": "active",
        "subjectType": ["Patient"],
        "date": date,
        "publisher": "the plan's pharmacy policy",
        "description": (
            f"What the plan's policy {pack.id} asks the prescriber to document when the chart "
            "does not show it. Generated from the policy pack."
        ),
        "item": top,
    }
    return Generated(questionnaire, tuple(ctx.wanted))


def all_link_ids(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every linkId of `items` and their descendants, depth first."""
    out: list[str] = []
    for item in items:
        out.append(str(item["linkId"]))
        out.extend(all_link_ids(item.get("item", ())))
    return out


def find_item(items: Iterable[Mapping[str, Any]], link_id: str) -> Mapping[str, Any] | None:
    for item in items:
        if item.get("linkId") == link_id:
            return item
        found = find_item(item.get("item", ()), link_id)
        if found is not None:
            return found
    return None

"""Cards and the response body, from decisions alone (pure: no I/O, no clock).

The words that name the drug or a clause of the policy come from the deciding pack's
`cards.yaml` (`texts.CardTexts`, kind in brackets below); this module picks the card.
Per evaluated order (the first six at both hooks):

- combination (critical, topic contraindication; duplicate-therapy when every
  conflict is another draft order of the same drug) [combination, duplicate]: a
  `no-concurrent-therapy` criterion not met; ONE card per conflict set however many
  section copies of the criterion repeat it; suggestions: delete a conflicting draft
  order, or delete this order.
- hypersensitivity (critical, contraindication) [hypersensitivity]: `hypersensitivity`
  not met.
- care setting (critical, off-guideline) [care_setting]: `care-setting` not met; a
  warning asking to confirm the patient is admitted when the setting is not known
  (no encounter, one that could not be read, emergency).
- not covered (warning, off-guideline) [not_covered]: a `not-covered` criterion (a use
  the policy excludes); the summary states the criterion's reason; suggestion: delete
  this order.
- active condition (critical, contraindication) [active_condition]: a
  `no-active-condition` criterion not met (e.g. starting the drug during a confirmed
  active serious infection): a safety stop, named by the chart's own words for the
  conditions in the criterion's evidence; suggestion: delete this order. A working
  diagnosis (unknown) gets no such card: documentation needed lists it.
- dose (warning, limits) [dose]: `dose-limit` or `dose-increase-limit` not met,
  with a suggestion that lowers the dose to the limit, or, when only the dispense
  request supplies too many units, one that lowers the dispense quantity and
  keeps the dose. Every number comes from the criterion's details (the check's), the
  unit words from the pack's drug.json `unit`.
- switch (info, duplicate-therapy) [switch]: a `no-concurrent-therapy` criterion whose
  details list `switch_from` records (the drug the ordered one replaces), whatever its
  status: stop that drug when the new one starts, at the time of its next dose.
- other criteria not met (warning; therapy-alternatives-req when a criterion of the
  pack's `step_therapy_criteria` fails, else off-guideline) [not_met]: order-sign only.
- documentation needed (warning, appropriate-use) [documentation_needed]: order-sign only;
  when the call names the pack's documentation template (`CoverageCall.questionnaires`), the
  CRD "request form completion" suggestion (create a Task to complete the form,
  `cards/form_task.py`), the detail says how to complete it, and a configured SMART app's
  link carries the form's canonical in its appContext.
- criteria met (info, guideline) [criteria_met]: order-sign only, and only when the order
  gets no coverage-information extension (else the card would only repeat it: CRD resp-12)
  or the client does not show it (`CoverageCall.shown_by_client`).
- off-label (info, off-guideline) [off_label]: order-sign only.
- companion / alternate (info, clinical-reminder / therapy-alternatives-req) [companion,
  alternate]: order-sign only; orders the pack proposes (policy.yaml `companions`,
  `alternates`) when a criterion has no record in the chart (`cards/proposals.py`).
- could not evaluate (warning, guideline) [could_not_check]: a `NotEvaluated`
  order, both hooks.

Every card has a uuid, a summary under 140 characters that says what to do (long
lists of names shrink to "and N more"; a summary is never cut mid-word), a
Markdown detail with the criteria table, the policy as source with a CRD topic,
override reasons when it is a warning or critical card, and the CRD
associated-resource extension pointing at its order. Empty values are removed
in one place (`serialize.prune`); only the required `cards` list may be empty.

Values from the chart (names, reasons, ids) are quoted by `safe_text` before they enter a
card: plain in summaries and labels, Markdown-escaped in details, ids in code spans
(docs/card-text-safety.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from cds_service.cards.codes import (
    ASSOCIATED_RESOURCE_KEY,
    EVALUATION_EXTENSION_KEY,
    OVERRIDE_REASONS,
    OVERRIDE_SETS,
)
from cds_service.cards.dose import (
    DoseLimit,
    DoseSuggestion,
    dose_limit,
    excess,
    fmt,
    product_unit,
    suggest_dispense,
    suggest_dose,
    suggest_regimen,
    suggest_schedule,
)
from cds_service.cards.form_task import form_suggestion, form_task
from cds_service.cards.indicators import indicator_for
from cds_service.cards.model import CardSettings, Evaluation, MissingData, NotEvaluated
from cds_service.cards.proposals import proposal_cards
from cds_service.cards.safe_text import markdown
from cds_service.cards.serialize import evaluation_to_json, not_evaluated_to_json, prune
from cds_service.cards.texts import CardTexts, texts_for
from cds_service.crd import coverage as crd_coverage  # module: crd imports cards too
from cds_service.crd.types import card_type, topic
from cds_service.policy.checks_dose import interval_words
from cds_service.policy.definition import DEFAULT_POLICY_PATH
from cds_service.policy.model import CriterionResult, Decision, Outcome, Status
from fhir_mappings.facts import PolicyFacts
from fhir_mappings.product_unit import ProductUnit

SUMMARY_LIMIT = 140
"""CDS Hooks: the summary SHOULD be under 140 characters."""
SUMMARY_WORDS = 18
"""A summary read at a glance: about a dozen words. A list of names ("add a, b and c")
shows fewer names ("a and 2 more") rather than pass this."""
SUMMARY_WORDS_MAX = 22
"""No summary has more words when a shorter candidate says the outcome (a dose card states
the ordered and the allowed amount and the fix, which takes more than a dozen)."""

DOSE_CHECKS = frozenset({"dose-limit", "dose-increase-limit"})
SPECIAL_CHECKS = frozenset(
    {
        "no-concurrent-therapy",
        "hypersensitivity",
        "care-setting",
        "not-covered",
        "no-active-condition",
    }
) | (DOSE_CHECKS)
QUOTE_LIMIT = 100
"""Policy wording longer than this is not quoted on a card (the policy link has it)."""

UuidFactory = Callable[[], str]
TextsLookup = Callable[[str], CardTexts]
"""Policy id -> the card texts of its pack."""
DEFAULT_POLICY_ID = DEFAULT_POLICY_PATH.parent.name
"""The pack whose texts an order that could not be evaluated gets when the call names
no other."""


def _fit(*candidates: str) -> str:
    """The first candidate summary under the limit (callers end with a short one).

    A summary is never cut mid-sentence with an ellipsis: that would drop what to
    do, which is always at its end. As a last resort the final candidate is cut at
    a word boundary (with an ellipsis when it has no space to cut at).

    A summary is plain text in CDS Hooks: values from the chart in it are cleaned but
    not Markdown-escaped (`safe_text.plain`, applied by `CardTexts.text`), so the
    length counted here is the length shown."""
    for text in candidates:
        if len(text) < SUMMARY_LIMIT:
            return text
    last = candidates[-1]
    cut = last.rfind(" ", 0, SUMMARY_LIMIT - 1)
    if cut <= 0:
        return last[: SUMMARY_LIMIT - 2] + "\u2026"
    return last[:cut].rstrip(" ,;:")


def _fit_short(*candidates: str) -> str:
    """`_fit`, passing over candidates of more than `SUMMARY_WORDS_MAX` words while a
    shorter one follows."""
    short = [text for text in candidates if len(text.split()) <= SUMMARY_WORDS_MAX]
    return _fit(*short, *candidates)


def _fit_names(
    build: Callable[[str], str], names: Sequence[str], fallback: str, joiner: str = ", "
) -> str:
    """`build(names joined)` with fewer names shown ("a, b and 3 more") until it fits."""
    if not names:
        return _fit(fallback)
    shown = [build(_join_names(names, limit, joiner)) for limit in range(min(len(names), 4), 0, -1)]
    short = [text for text in shown if len(text.split()) <= SUMMARY_WORDS]
    return _fit(*short, *shown, fallback)


def _lower_first(text: str) -> str:
    """ "The member's date of birth." -> "the member's date of birth" (for "send ...")."""
    text = text.rstrip(". ")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _cell(text: str) -> str:
    """Text for a table cell or a line of a detail: one line, Markdown escaped (it may
    quote the chart; `safe_text.markdown` escapes `|` too)."""
    return markdown(text)


_REF_LIST = re.compile(r"\s*\((?:[A-Z][A-Za-z]+/[^\s,()]+(?:,\s*)?)+\)")
_REF = re.compile(r"\b[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def _plain_reason(text: str) -> str:
    """A check's reason without the record ids it may name ("the drug
    (MedicationRequest/rx-1) is ..." -> "the drug is ..."): the ids stay in the
    evaluation extension, a prescriber reads the words."""
    return _REF.sub("a record", _REF_LIST.sub("", text))


def _sentence(text: str) -> str:
    """A reason as a sentence of a detail: record ids left out, Markdown escaped, one
    final full stop."""
    return _cell(_plain_reason(text)).rstrip(". ") + "."


def _detail(decision: Decision, *paragraphs: str) -> str:
    """The detail: the card's own paragraphs, the action first. Neither the criteria
    table nor the policy's clause numbers: they stay in the evaluation extension, which
    systems read; a prescriber reads what to do."""
    del decision  # kept in the signature: every card kind passes the decision it is about
    return "\n\n".join(p for p in paragraphs if p)


def _not_met(decision: Decision, *checks: str) -> list[CriterionResult]:
    """The criteria of these checks that are not met, in the decision's order."""
    return [r for r in decision.criteria if r.check in checks and r.status is Status.NOT_MET]


def _join_names(names: Sequence[str], limit: int = 3, joiner: str = ", ") -> str:
    if len(names) <= limit:
        if len(names) == 1:
            return names[0]
        if joiner != ", ":
            return joiner.join(names)
        return " and ".join([", ".join(names[:-1]), names[-1]])
    return joiner.join(names[:limit]) + f" and {len(names) - limit} more"


class _Builder:
    """Builds the cards of one order; holds the settings, the uuid factory of the
    response and the card texts of the order's pack."""

    def __init__(
        self,
        settings: CardSettings,
        uuid_factory: UuidFactory,
        texts: CardTexts,
        today: date | None = None,
        crd: crd_coverage.CoverageCall | None = None,
    ) -> None:
        self.settings = settings
        self.uuid = uuid_factory
        self.texts = texts
        self.today = today
        self.crd = crd
        """The call's coverage settings: the payer and each pack's documentation template."""

    # -- shared pieces -------------------------------------------------------------

    def _override_reasons(self, kind: str) -> list[dict[str, str]]:
        system = self.settings.override_reason_system
        return [
            {
                "system": system,
                "code": code,
                "display": OVERRIDE_REASONS[code].format(product=self.texts.product),
            }
            for code in OVERRIDE_SETS[kind]
        ]

    def _policy_link(self) -> dict[str, str] | None:
        if not self.settings.policy_url:
            return None
        return {
            "label": f"Read policy {self.settings.policy_label}",
            "url": self.settings.policy_url,
            "type": "absolute",
        }

    def _submission_link(
        self, order_ref: str, policy_id: str, questionnaire: str | None = None
    ) -> dict[str, str] | None:
        if self.settings.smart_app_url:
            launch = {"order": order_ref, "policy": policy_id}
            if questionnaire:
                launch["questionnaire"] = questionnaire
            context = json.dumps(launch, separators=(",", ":"))
            return {
                "label": "Send the documentation (app)",
                "url": self.settings.smart_app_url,
                "type": "smart",
                "appContext": context,
            }
        if self.settings.documentation_form_url:
            return {
                "label": "Send the documentation (form)",
                "url": self.settings.documentation_form_url,
                "type": "absolute",
            }
        return None

    def _card(
        self,
        *,
        order_ref: str,
        summary: str,
        indicator: str,
        detail: str,
        topic_code: str,
        override_kind: str | None,
        suggestions: Iterable[dict[str, Any]] = (),
        links: Iterable[dict[str, str] | None] = (),
    ) -> dict[str, Any]:
        card_uuid = self.uuid()
        suggestion_list = [{**s, "uuid": self.uuid()} for s in suggestions]
        card: dict[str, Any] = {
            "uuid": card_uuid,
            "summary": _fit(summary),
            "indicator": indicator,
            "detail": detail,
            "source": {
                "label": self.settings.policy_label,
                "url": self.settings.policy_url,
                "topic": topic(topic_code),
            },
            "suggestions": suggestion_list,
            "selectionBehavior": "at-most-one" if suggestion_list else None,
            "overrideReasons": self._override_reasons(override_kind) if override_kind else None,
            "links": [link for link in links if link],
            "extension": {ASSOCIATED_RESOURCE_KEY: [{"reference": order_ref}]},
        }
        return prune(card)  # type: ignore[no-any-return]

    def _result_card(
        self,
        evaluation: Evaluation,
        result: CriterionResult,
        *paragraphs: str,
        summary: str,
        indicator: str,
        topic_code: str,
        override_kind: str,
        suggestions: Iterable[dict[str, Any]],
        found: bool = True,
    ) -> dict[str, Any]:
        """A card about one criterion not met: the pack's paragraphs (the action first),
        then what the chart shows (the check's reason), unless `found` is False (a dose
        card, whose table says it)."""
        return self._card(
            order_ref=evaluation.facts.order.ref,
            summary=summary,
            indicator=indicator,
            detail=_detail(
                evaluation.decision,
                *paragraphs,
                f"Found: {_sentence(result.reason)}" if found else "",
            ),
            topic_code=topic_code,
            override_kind=override_kind,
            suggestions=suggestions,
        )

    def _stop_card(
        self,
        evaluation: Evaluation,
        result: CriterionResult,
        *paragraphs: str,
        summary: str,
        topic_code: str,
        override_kind: str,
        kind: str,
    ) -> dict[str, Any]:
        """A card whose suggestion removes this order (a safety stop, or a use the plan
        does not cover); its indicator is the kind's (`indicators.indicator_for`)."""
        return self._result_card(
            evaluation,
            result,
            *paragraphs,
            summary=summary,
            indicator=indicator_for(kind),
            topic_code=topic_code,
            override_kind=override_kind,
            suggestions=[self._remove_this_order(evaluation.facts.order.ref)],
        )

    def _dose_limit_card(
        self,
        evaluation: Evaluation,
        result: CriterionResult,
        *paragraphs: str,
        summary: str,
        suggestions: Iterable[dict[str, Any]],
    ) -> dict[str, Any]:
        """A warning that the order is beyond a dose, days or quantity limit; it closes
        with what else the prior authorization needs (`_also_needed`)."""
        return self._result_card(
            evaluation,
            result,
            *paragraphs,
            self._also_needed(evaluation.decision),
            summary=summary,
            indicator=indicator_for("dose"),
            topic_code=card_type("dose"),
            override_kind="dose",
            suggestions=suggestions,
            found=False,
        )

    def _also_needed(self, decision: Decision) -> str:
        """What the order still lacks besides the dose (criteria the chart or the request
        cannot tell: "confirm the prescriber is a rheumatologist", "add ..."), when no
        documentation card of this order says it (the decision is not documentation-needed):
        fixing the dose alone would not make the request complete. Empty when nothing is
        missing or the pack has no `dose.also_needed` text."""
        if decision.outcome is Outcome.DOCUMENTATION_NEEDED:
            return ""
        if not self.texts.has_text("dose", "also_needed"):
            return ""
        add, confirm = self._needs(decision)
        items = [*confirm]
        if add:
            items.append(self.texts.text("documentation_needed", "add", items=_join_names(add, 9)))
        if not items:
            return ""
        return self.texts.text("dose", "also_needed", items="; ".join(items))

    def _links(
        self, order_ref: str, policy_id: str, questionnaire: str | None = None
    ) -> list[dict[str, str] | None]:
        """The policy, and where to send the documentation for the prior authorization."""
        return [self._policy_link(), self._submission_link(order_ref, policy_id, questionnaire)]

    def _questionnaire(self, policy_id: str) -> str | None:
        """The canonical of the pack's documentation template (the form), when the call
        names one (`CoverageCall.questionnaires`: every pack, once the service knows its
        public base URL)."""
        found = self.crd.questionnaires.get(policy_id, ()) if self.crd is not None else ()
        return found[0] if found else None

    def _form_suggestion(self, evaluation: Evaluation, questionnaire: str) -> dict[str, Any]:
        """CRD "request form completion": create a Task to complete the pack's form."""
        label = self.texts.text("documentation_needed", "form_label")
        payer = self.crd.payer.name if self.crd is not None else self.settings.plan_name
        task = form_task(
            questionnaire=questionnaire,
            order_ref=evaluation.facts.order.ref,
            patient_ref=evaluation.facts.patient_ref,
            payer_name=payer,
            description=label,
            today=self.today,
        )
        return form_suggestion(label, task)

    @staticmethod
    def _update(label: str, resource: dict[str, Any]) -> dict[str, Any]:
        """The recommended suggestion that replaces the draft order by `resource`."""
        return {
            "label": label,
            "isRecommended": True,
            "actions": [{"type": "update", "description": label, "resource": resource}],
        }

    def _update_order(self, suggestion: DoseSuggestion) -> dict[str, Any]:
        """The suggestion that replaces the draft order by its copy with the new dose."""
        label = self.texts.text("actions", "change_dose", dose=suggestion.label)
        return self._update(label, suggestion.resource)

    @staticmethod
    def _remove_order(order_ref: str, label: str) -> dict[str, Any]:
        return {
            "label": label,
            "actions": [
                {"type": "delete", "description": label, "resourceId": order_ref},
            ],
        }

    def _remove_this_order(self, order_ref: str) -> dict[str, Any]:
        return self._remove_order(order_ref, self.texts.text("actions", "remove_order"))

    # -- per-kind cards ------------------------------------------------------------

    def combination_cards(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        decision = evaluation.decision
        order_ref = evaluation.facts.order.ref
        groups: dict[tuple[tuple[str, str], ...], list[CriterionResult]] = {}
        conflicts_of: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
        for result in _not_met(decision, "no-concurrent-therapy"):
            conflicts = [c for c in result.details.get("conflicts", ()) if isinstance(c, dict)]
            if conflicts:
                key = tuple(
                    sorted((str(c.get("drug", "")), str(c.get("ref", ""))) for c in conflicts)
                )
            else:
                key = tuple(sorted(("", ref) for ref in result.evidence))
            groups.setdefault(key, []).append(result)
            conflicts_of.setdefault(key, conflicts)
        texts = self.texts
        cards = []
        for key, results in groups.items():
            conflicts = conflicts_of[key]
            drugs = sorted({str(c["drug"]) for c in conflicts if c.get("drug")})
            ids = ", ".join(r.id for r in results)
            drug_words = _join_names(drugs) if drugs else texts.text("combination", "other_drugs")
            suggestions = []
            for conflict in conflicts:
                ref = str(conflict.get("ref", ""))
                if conflict.get("draft") and ref.startswith("MedicationRequest/"):
                    label = texts.text(
                        "combination", "remove_draft", drug=conflict.get("drug", "other")
                    )
                    suggestions.append(self._remove_order(ref, label))
            suggestions.append(self._remove_this_order(order_ref))
            # Another draft order of the evaluated drug itself (the check marks it).
            is_duplicate = bool(conflicts) and all(c.get("duplicate") for c in conflicts)
            reasons = list(dict.fromkeys(_sentence(r.reason) for r in results))
            lines = [
                texts.text("combination", "detail", drugs=drug_words, criteria=ids),
                "\n".join(f"- {reason}" for reason in reasons),
            ]
            summary = (
                texts.text("duplicate", "summary")
                if is_duplicate
                else _fit_names(
                    lambda words: texts.text("combination", "summary", drugs=words),
                    drugs,
                    texts.text("combination", "summary_short"),
                )
            )
            cards.append(
                self._card(
                    order_ref=order_ref,
                    summary=summary,
                    indicator=indicator_for("duplicate" if is_duplicate else "combination"),
                    detail=_detail(decision, *lines),
                    topic_code=card_type("duplicate" if is_duplicate else "combination"),
                    override_kind="combination",
                    suggestions=suggestions,
                )
            )
        return cards

    def hypersensitivity_cards(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        cards = []
        for result in _not_met(evaluation.decision, "hypersensitivity"):
            substances = result.details.get("substances")
            names = (
                [str(name) for name in substances if name]
                if isinstance(substances, list | tuple)
                else []
            )
            cards.append(
                self._stop_card(
                    evaluation,
                    result,
                    self.texts.text("hypersensitivity", "detail"),
                    summary=_fit_names(
                        lambda words: self.texts.text(
                            "hypersensitivity", "summary", substances=words
                        ),
                        names,
                        self.texts.text("hypersensitivity", "summary_short"),
                    ),
                    topic_code=card_type("hypersensitivity"),
                    override_kind="hypersensitivity",
                    kind="hypersensitivity",
                )
            )
        return cards

    def care_setting_cards(
        self, evaluation: Evaluation, confirm: bool = True
    ) -> list[dict[str, Any]]:
        """A use authorized for inpatients only, ordered for an outpatient (a documented
        ambulatory encounter): critical. Setting not known (no encounter, one that could
        not be read, emergency): a warning that asks to confirm the patient is
        hospitalized. Inpatient use beyond the authorized regimen (dose or days): a
        warning, with a suggestion that sets the dose to the regimen's when it is the dose
        that is over."""
        texts = self.texts
        cards = [
            self._result_card(
                evaluation,
                result,
                texts.text("care_setting", "confirm_detail"),
                summary=texts.text("care_setting", "confirm_summary"),
                indicator=indicator_for("care_setting"),
                topic_code=card_type("care_setting"),
                override_kind="care-setting",
                suggestions=(),
            )
            for result in evaluation.decision.criteria
            if confirm
            and result.check == "care-setting"
            and result.status is Status.UNKNOWN
            and result.details.get("confirm_setting")
        ]
        for result in _not_met(evaluation.decision, "care-setting"):
            if result.details.get("setting") == "inpatient":
                cards.append(self._regimen_card(evaluation, result))
                continue
            cards.append(
                self._stop_card(
                    evaluation,
                    result,
                    texts.text("care_setting", "outpatient_detail"),
                    summary=texts.text("care_setting", "outpatient_summary"),
                    topic_code=card_type("care_setting"),
                    override_kind="care-setting",
                    kind="care_setting",
                )
            )
        return cards

    def _regimen_card(self, evaluation: Evaluation, result: CriterionResult) -> dict[str, Any]:

        def number(key: str) -> float | None:
            value = result.details.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value)

        regimen_mg, regimen_days = number("regimen_mg_per_day"), number("regimen_max_days")
        ordered_mg, ordered_days = number("ordered_mg_per_day"), number("ordered_days")
        suggestions: list[dict[str, Any]] = []
        regimen = self.texts.text("care_setting", "regimen_unknown")
        if regimen_mg is not None and regimen_days is not None:
            regimen = self.texts.text(
                "care_setting", "regimen", mg=fmt(regimen_mg), days=fmt(regimen_days)
            )
            dose_over = ordered_mg is not None and ordered_mg > regimen_mg
            days_over = ordered_days is not None and ordered_days > regimen_days
            unit = product_unit(evaluation.facts, evaluation.decision.policy_id)
            if (dose_over or days_over) and unit is not None:
                suggestion = suggest_regimen(
                    evaluation.facts.order.resource, regimen_mg, int(regimen_days), unit
                )
                if suggestion is not None:
                    suggestions.append(self._update_order(suggestion))
        return self._dose_limit_card(
            evaluation,
            result,
            self.texts.text("care_setting", "regimen_detail", regimen=regimen),
            summary=self.texts.text("care_setting", "regimen_summary", regimen=regimen),
            suggestions=suggestions,
        )

    def dose_cards(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        over = _not_met(evaluation.decision, *DOSE_CHECKS)
        return [self._dose_card(evaluation, over[0])] if over else []

    def _dose_summary(self, ordered: str | None, allowed: str | None, *actions: str) -> str:
        """The dose card's summary: the ordered and the allowed amount and what to do,
        shorter until it fits (`actions` from the fullest to the plainest). The fix is kept
        before the amounts: a summary that states the new dose beats one that only states
        the ordered one (a client that cannot apply the suggestion shows the words)."""
        texts = self.texts
        candidates = []
        for action in actions:
            if ordered is not None and allowed is not None:
                candidates.append(
                    texts.text("dose", "summary", ordered=ordered, allowed=allowed, action=action)
                )
            if allowed is not None:
                candidates.append(
                    texts.text("dose", "summary_unmeasured", allowed=allowed, action=action)
                )
            candidates.append(texts.text("dose", "summary_short", action=action))
        return _fit_short(*candidates)

    def _dose_card(self, evaluation: Evaluation, result: CriterionResult) -> dict[str, Any]:
        facts, decision = evaluation.facts, evaluation.decision
        if result.details.get("schedule"):
            return self._schedule_dose_card(evaluation, result)
        limit = dose_limit(facts, result)
        over = excess(limit)
        unit = product_unit(facts, decision.policy_id)
        if over == "dispense":
            return self._dispense_card(evaluation, result, limit, unit)
        suggestion = (
            suggest_dose(
                facts.order.resource, limit, facts.order.dose.administrations_per_day, unit
            )
            if unit is not None
            else None
        )
        ordered: str | None = None
        allowed: str | None = None
        if over == "units":
            ordered = f"{fmt(limit.ordered_units_per_day or 0)} {_plural(unit)} a day"
            if limit.limit_units_per_day is not None:
                allowed = f"{fmt(limit.limit_units_per_day)} a day"
        elif limit.kind == "weight":
            if limit.ordered_mg_per_kg_per_day is not None:
                ordered = f"{fmt(limit.ordered_mg_per_kg_per_day)} mg/kg/day"
            if limit.limit_mg_per_kg_per_day is not None:
                allowed = f"{fmt(limit.limit_mg_per_kg_per_day)} mg/kg/day"
        else:
            if limit.ordered_mg_per_day is not None:
                ordered = f"{fmt(limit.ordered_mg_per_day)} mg/day"
            if limit.limit_mg_per_day is not None:
                allowed = f"{fmt(limit.limit_mg_per_day)} mg/day"
        if over is None:  # the policy layer found it over; the card cannot say by how much
            ordered = None
        actions = (f"change to {suggestion.label}",) if suggestion else ()
        summary = self._dose_summary(ordered, allowed, *actions, "lower the dose")
        suggestions = [self._update_order(suggestion)] if suggestion is not None else []
        return self._dose_limit_card(
            evaluation,
            result,
            _dose_table(limit, suggestion, unit, self.texts),
            summary=summary,
            suggestions=suggestions,
        )

    def _schedule_dose_card(
        self, evaluation: Evaluation, result: CriterionResult
    ) -> dict[str, Any]:
        """A dose checked per administration and schedule (loading, maintenance, interval,
        quantity): the card names the product's unit and the schedule, and suggests a copy
        of the order within the limits."""
        facts, details = evaluation.facts, result.details
        unit = product_unit(facts, evaluation.decision.policy_id)
        proposal = (
            suggest_schedule(facts.order.resource, details, unit) if unit is not None else None
        )
        suggestions: list[dict[str, Any]] = []
        only_quantity = list(details.get("excess") or ()) == ["quantity"]
        if only_quantity or (proposal is not None and not proposal.label):
            supplied, allowed = _dispense_words(details, unit)
            actions = ["lower the quantity"]
            if proposal is not None and proposal.quantity_words:
                action = f"dispense {proposal.quantity_words}"
                actions.insert(0, action)
                suggestions.append(
                    self._update(
                        f"Keep the dose; dispense {proposal.quantity_words}", proposal.resource
                    )
                )
            candidates = (
                [
                    self.texts.text(
                        "dose", "quantity_summary", supplied=supplied, allowed=allowed, action=a
                    )
                    for a in actions
                ]
                if supplied is not None and allowed is not None
                else []
            )
            summary = _fit_short(
                *candidates, self.texts.text("dose", "dispense_summary_unmeasured")
            )
        else:
            ordered, allowed = _schedule_words(details, unit)
            actions = ["lower the dose"]
            if proposal is not None:
                actions = [f"change to {proposal.label}", *actions]
                if proposal.quantity_words:
                    actions.insert(
                        0, f"change to {proposal.label}; dispense {proposal.quantity_words}"
                    )
                suggestions.append(self._update(f"Change to {proposal.label}", proposal.resource))
            summary = self._dose_summary(ordered, allowed, *actions)
        return self._dose_limit_card(
            evaluation,
            result,
            _schedule_table(details, unit, self.texts),
            summary=summary,
            suggestions=suggestions,
        )

    def _dispense_card(
        self,
        evaluation: Evaluation,
        result: CriterionResult,
        limit: DoseLimit,
        unit: ProductUnit | None,
    ) -> dict[str, Any]:
        """The dose is within the limit; the dispense request supplies more units a day
        than the dose needs. The suggestion keeps the dose and lowers the quantity."""
        needed = (
            limit.ordered_units_per_day
            if limit.ordered_units_per_day is not None
            else limit.limit_units_per_day
        )
        suggestions: list[dict[str, Any]] = []
        action = "lower the dispense quantity"
        if unit is not None and needed is not None:
            proposal = suggest_dispense(evaluation.facts.order.resource, needed, unit)
            if proposal is not None:
                words, resource = proposal
                action = f"dispense {words}"
                suggestions.append(self._update(f"Keep the dose; dispense {words}", resource))
        units = _plural(unit)
        texts = self.texts
        supplied = fmt(limit.dispense_units_per_day or 0)
        if needed is None:
            summary = texts.text("dose", "dispense_summary_unmeasured")
            paragraph = ""
        else:
            summary = _fit(
                texts.text(
                    "dose",
                    "dispense_summary",
                    supplied=supplied,
                    needed=fmt(needed),
                    units=units,
                    action=action,
                ),
                texts.text(
                    "dose", "dispense_summary_short", needed=fmt(needed), units=units, action=action
                ),
                texts.text("dose", "dispense_summary_unmeasured"),
            )
            paragraph = texts.text(
                "dose", "dispense_detail", supplied=supplied, needed=fmt(needed), units=units
            )
        return self._dose_limit_card(
            evaluation,
            result,
            paragraph,
            _dose_table(limit, None, unit, texts),
            summary=summary,
            suggestions=suggestions,
        )

    def switch_cards(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        """The drug the ordered one replaces (`no-concurrent-therapy` with `switch_from`,
        whatever its status): one info card per set of records, telling the prescriber to
        stop that drug when the new one starts, at the time of its next dose."""
        decision = evaluation.decision
        groups: dict[tuple[str, ...], list[CriterionResult]] = {}
        entries_of: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for result in decision.criteria:
            if result.check != "no-concurrent-therapy":
                continue
            raw = result.details.get("switch_from")
            entries = (
                [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list | tuple) else []
            )
            if not entries:
                continue
            key = tuple(sorted({str(e.get("ref", "")) for e in entries}))
            groups.setdefault(key, []).append(result)
            entries_of.setdefault(key, entries)
        cards = []
        texts = self.texts
        for key, results in groups.items():
            drugs = sorted({str(e["drug"]) for e in entries_of[key] if e.get("drug")})
            paragraph = texts.text(
                "switch",
                "detail",
                drugs=_join_names(drugs) if drugs else "the drug being replaced",
                criteria=", ".join(r.id for r in results),
            )
            cards.append(
                self._card(
                    order_ref=evaluation.facts.order.ref,
                    summary=_fit_names(
                        lambda words: texts.text("switch", "summary", drugs=words),
                        drugs,
                        texts.text("switch", "summary_short"),
                    ),
                    indicator=indicator_for("switch"),
                    detail=_detail(decision, paragraph),
                    topic_code=card_type("switch"),
                    override_kind=None,
                )
            )
        return cards

    def not_covered_cards(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        """A use the policy excludes (`not-covered` not met): a warning whose summary states
        the criterion's reason; its suggestion removes the order."""
        texts = self.texts
        return [
            self._result_card(
                evaluation,
                result,
                texts.text("not_covered", "detail"),
                summary=_fit(
                    texts.text(
                        "not_covered",
                        "summary",
                        reason=texts.not_met(
                            result.id, result.details, _plain_reason(result.reason)
                        ).rstrip(". "),
                    ),
                    texts.text("not_covered", "summary_short"),
                ),
                indicator=indicator_for("not_covered"),
                topic_code=card_type("not_covered"),
                override_kind="not-met",
                suggestions=[self._remove_this_order(evaluation.facts.order.ref)],
            )
            for result in _not_met(evaluation.decision, "not-covered")
        ]

    def active_condition_cards(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        """A confirmed active condition during which the drug must not be started
        (`no-active-condition` not met): critical, the summary names the conditions by
        their recorded names; its suggestion removes the order."""
        texts = self.texts
        cards = []
        for result in _not_met(evaluation.decision, "no-active-condition"):
            names = _condition_names(evaluation.facts, result.evidence)
            cards.append(
                self._stop_card(
                    evaluation,
                    result,
                    texts.text("active_condition", "detail"),
                    summary=_fit_names(
                        lambda words: texts.text("active_condition", "summary", conditions=words),
                        names,
                        texts.text("active_condition", "summary_short"),
                    ),
                    topic_code=card_type("active_condition"),
                    override_kind="active-condition",
                    kind="active_condition",
                )
            )
        return cards

    def not_met_card(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        """Criteria not met that no other card is about: "Not covered: <why>", each
        reason in the pack's plain words (`criteria.<id>.not_met`, filled from what the
        check found), the check's own reason beside it when the words differ."""
        decision = evaluation.decision
        texts = self.texts
        failed = [
            r
            for r in decision.criteria
            if r.status is Status.NOT_MET and r.check not in SPECIAL_CHECKS
        ]
        if not failed:
            return []
        step = any(r.id in texts.step_therapy_criteria for r in failed)
        reasons = list(
            dict.fromkeys(
                texts.not_met(r.id, r.details, _lower_first(_plain_reason(r.reason))).rstrip(". ")
                for r in failed
            )
        )
        lines = []
        for r in failed:
            found = _plain_reason(r.reason).rstrip(". ")
            words = texts.not_met(r.id, r.details, found).rstrip(". ")
            line = f"- {_cell(_upper_first(words))}"
            if found.lower() != words.lower():
                line += f" (found: {_cell(_lower_first(found))})"
            lines.append(line)
        return [
            self._card(
                order_ref=evaluation.facts.order.ref,
                summary=_fit_names(
                    lambda words: texts.text("not_met", "summary", reasons=words),
                    reasons,
                    texts.text("not_met", "summary_short"),
                    joiner="; ",
                ),
                indicator=indicator_for("not_met"),
                detail=_detail(
                    decision, texts.text("not_met", "detail"), "\n".join(dict.fromkeys(lines))
                ),
                topic_code=card_type("step_therapy" if step else "not_met"),
                override_kind="not-met",
                links=[self._policy_link()],
            )
        ]

    def _needs(self, decision: Decision) -> tuple[list[str], list[str]]:
        """(what to add, what to confirm) for the unknown criteria, in the pack's words:
        a criterion the request lacked the context for (no role for the prescriber, no
        encounter) is to confirm, the others are to add."""
        add: list[str] = []
        confirm: list[str] = []
        for r in decision.criteria:
            if r.status is not Status.UNKNOWN:
                continue
            asks = self.texts.confirm(r.id) if _context_missing(r) else None
            if asks is not None:
                confirm.append(asks)
            else:
                fallback = _lower_first(r.documentation or r.reason)
                add.append(self.texts.label(r.id, fallback))
        return list(dict.fromkeys(add)), list(dict.fromkeys(confirm))

    def documentation_card(self, evaluation: Evaluation) -> dict[str, Any]:
        """PA needed: what to add (the criteria's labels) and what to confirm, then one
        line per item with what the plan asks for, and how to send it."""
        decision = evaluation.decision
        texts = self.texts
        add, confirm = self._needs(decision)

        def actions(shown_add: str | None) -> str:
            parts = (
                [texts.text("documentation_needed", "add", items=shown_add)] if shown_add else []
            )
            return "; ".join(parts + confirm)

        if add:
            summary = _fit_names(
                lambda words: texts.text("documentation_needed", "summary", actions=actions(words)),
                add,
                texts.text("documentation_needed", "summary_short"),
            )
        else:
            summary = _fit(
                texts.text("documentation_needed", "summary", actions=actions(None)),
                texts.text("documentation_needed", "summary_short"),
            )
        lines = []
        for r in decision.criteria:
            if r.status is not Status.UNKNOWN:
                continue
            asks = texts.confirm(r.id) if _context_missing(r) else None
            if asks is not None:
                lines.append(f"- **{_cell(_upper_first(asks))}**: {_sentence(r.reason)}")
                continue
            label = texts.label(r.id, "")
            what = _sentence(r.documentation or r.reason)
            lines.append(_labelled_item(_cell(_upper_first(label)), what) if label else f"- {what}")
        questionnaire = self._questionnaire(decision.policy_id)
        links = self._links(evaluation.facts.order.ref, decision.policy_id, questionnaire)
        has_route = any(link is not None for link in links[1:])
        if questionnaire is not None:
            how = texts.text(
                "documentation_needed",
                "form",
                action=texts.text("documentation_needed", "form_label"),
            )
        else:
            how = "" if has_route else texts.text("documentation_needed", "submit")
        return self._card(
            order_ref=evaluation.facts.order.ref,
            summary=summary,
            indicator=indicator_for("documentation_needed"),
            detail=_detail(
                decision,
                texts.text("documentation_needed", "detail"),
                "\n".join(dict.fromkeys(lines)),
                how,
            ),
            topic_code=card_type("documentation_needed"),
            override_kind="documentation",
            suggestions=[self._form_suggestion(evaluation, questionnaire)] if questionnaire else [],
            links=links,
        )

    def criteria_met_card(self, evaluation: Evaluation) -> dict[str, Any]:
        decision = evaluation.decision
        months = decision.approval_months
        section = decision.section
        if months:
            summary = self.texts.text(
                "criteria_met", "summary_with_duration", section=section, months=months
            )
            paragraph = self.texts.text(
                "criteria_met", "detail_with_duration", section=section, months=months
            )
        else:
            summary = self.texts.text("criteria_met", "summary", section=section)
            paragraph = self.texts.text("criteria_met", "detail", section=section)
        return self._card(
            order_ref=evaluation.facts.order.ref,
            summary=summary,
            indicator=indicator_for("criteria_met"),
            detail=_detail(decision, paragraph),
            topic_code=card_type("criteria_met"),
            override_kind=None,
            links=self._links(evaluation.facts.order.ref, decision.policy_id),
        )

    def off_label_card(self, evaluation: Evaluation) -> dict[str, Any]:
        """A use the policy does not list: the card names the diagnosis (the order's
        reason, else the recorded diagnosis no section of the policy covers) and asks for
        the evidence the off-label review needs."""
        decision = evaluation.decision
        texts = self.texts
        policies = decision.policy_references or texts.off_label_references
        off_label = texts.off_label_policy if texts.off_label_policy in policies else policies[0]
        others = [p for p in policies if p != off_label]
        names = {"policy_id": decision.policy_id, "off_label_policy": off_label}
        diagnoses = _off_label_diagnoses(evaluation.facts)
        diagnosis = _join_names(diagnoses, 2) if diagnoses else "this diagnosis"
        paragraph = (
            texts.text(
                "off_label",
                "detail_with_others",
                section=decision.section,
                other_policies=" or ".join(others),
                diagnosis=diagnosis,
                **names,
            )
            if others
            else texts.text(
                "off_label", "detail", section=decision.section, diagnosis=diagnosis, **names
            )
        )
        return self._card(
            order_ref=evaluation.facts.order.ref,
            summary=_fit_names(
                lambda words: texts.text("off_label", "summary", diagnosis=words, **names),
                diagnoses,
                texts.text("off_label", "summary_short"),
            ),
            indicator=indicator_for("off_label"),
            detail=_detail(decision, paragraph),
            topic_code=card_type("off_label"),
            override_kind="documentation",
            links=self._links(evaluation.facts.order.ref, decision.policy_id),
        )

    def proposal_cards(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        """The pack's companions and alternates (orders to add, a product to try first):
        info cards without links, see `cards/proposals.py`."""
        return [
            self._card(
                order_ref=evaluation.facts.order.ref,
                summary=_fit(*spec.summaries),
                indicator=indicator_for(spec.kind),
                detail=_detail(evaluation.decision, spec.paragraph),
                topic_code=spec.topic,
                override_kind=None,
                suggestions=spec.suggestions,
            )
            for spec in proposal_cards(
                evaluation.facts, evaluation.decision, self.texts, self.today
            )
        ]

    def not_evaluated_card(self, item: NotEvaluated, policy_id: str) -> dict[str, Any]:
        texts = self.texts
        if item.drug_known:
            summary = texts.text("could_not_check", "summary")
            advice = texts.text("could_not_check", "advice")
        else:
            summary = texts.text("could_not_check", "summary_unknown_drug")
            advice = texts.text("could_not_check", "advice_unknown_drug")
        by_reason: dict[str, list[str]] = {}
        for m in item.missing_data:
            by_reason.setdefault(m.reason, []).append(_record_words(m.resource_type))
        missing = "\n".join(
            f"- {_cell(_join_names(list(dict.fromkeys(names)), 20))}: {_cell(reason)}"
            for reason, names in by_reason.items()
        )
        return self._card(
            order_ref=item.order_ref,
            summary=summary,
            indicator=indicator_for("could_not_check"),
            detail="\n\n".join(
                part
                for part in (
                    advice,
                    texts.text("could_not_check", "detail", reason=item.reason),
                    f"Not read:\n{missing}" if missing else "",
                )
                if part
            ),
            topic_code=card_type("could_not_check"),
            override_kind="not-evaluated",
            links=self._links(item.order_ref, policy_id),
        )


def _labelled_item(label: str, what: str) -> str:
    """One line of a list: "- **label**: what"; when `what` already starts with the label
    ("A baseline CDAI or RAPID3 score."), the label is not said twice: the words in `what`
    are made bold instead. Both are Markdown already."""
    if what.lower().startswith(label.lower()):
        return f"- **{what[: len(label)]}**{what[len(label) :]}"
    return f"- **{label}**: {what}"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _context_missing(result: CriterionResult) -> bool:
    """The request lacked what the criterion needs to be decided (the check says so):
    no encounter for the care setting, no role for the prescriber's specialty."""
    return bool(result.details.get("confirm_setting") or result.details.get("confirm_specialty"))


RECORD_WORDS: Mapping[str, str] = {
    "Patient": "the patient's demographics",
    "Condition": "the problem list",
    "MedicationRequest": "the medication orders",
    "MedicationStatement": "the medication list",
    "MedicationDispense": "the dispensing history",
    "MedicationAdministration": "the administrations",
    "Observation": "the results and measurements",
    "AllergyIntolerance": "the allergy list",
    "Encounter": "the encounter",
    "Coverage": "the coverage",
    "Practitioner": "the prescriber",
    "PractitionerRole": "the prescriber's role",
    "ServiceRequest": "the referrals",
    "CareTeam": "the care team",
    "Procedure": "the procedures",
}
"""A record type in words, for the card that says what could not be read."""


def _record_words(resource_type: str) -> str:
    return RECORD_WORDS.get(resource_type, resource_type)


def _off_label_diagnoses(facts: PolicyFacts) -> list[str]:
    """The names of the diagnoses an off-label order is for: the order's own reasons
    (diagnoses only), else the patient's recorded diagnoses that matched a value set
    (those the policy knows of and does not cover), else the recorded diagnoses when there
    are at most two (more: the card does not guess which one the order is for)."""
    reasons = [d for d in facts.order.reasons if d.valuesets or d.display]
    known = [d for d in facts.diagnoses if d.valuesets]
    few = list(facts.diagnoses) if len(facts.diagnoses) <= 2 else []
    others = list(facts.other_conditions) if len(facts.other_conditions) <= 2 else []
    for group in (
        [d.display for d in reasons],
        [d.display for d in known],
        [d.display for d in few],
        others,
    ):
        names = [_mid_sentence(" ".join((name or "").split())) for name in group]
        names = [n for n in dict.fromkeys(names) if n]
        if names:
            return names
    return []


def _mid_sentence(name: str) -> str:
    """A recorded diagnosis name as it reads inside a sentence: "Adult-onset Still's
    disease" -> "adult-onset Still's disease". Only the first word is lower-cased, and only
    when it is an ordinary word (a later capital, as in "Familial Mediterranean fever", is a
    proper noun); an eponym ("Still's"), an acronym or a name with digits ("COVID-19",
    "NOMID") or inner capitals ("Muckle-Wells") keeps its case."""
    first, space, rest = name.partition(" ")
    ordinary = (
        first[:1].isupper()
        and not any(ch.isupper() or ch.isdigit() for ch in first[1:])
        and "'" not in first
        and "\u2019" not in first
    )
    return first[:1].lower() + first[1:] + space + rest if ordinary else name


def _condition_names(facts: PolicyFacts, refs: Sequence[str]) -> list[str]:
    """The recorded names of the conditions `refs` point at (the patient's condition
    history, active diagnoses and the order's reasons), in the order of `refs`, each once."""
    by_ref: dict[str, str] = {}
    for record in facts.condition_history:
        by_ref.setdefault(record.ref, record.display or record.code)
    for diagnosis in (*facts.diagnoses, *facts.order.reasons):
        for ref in diagnosis.refs:
            by_ref.setdefault(ref, diagnosis.display or diagnosis.code)
    names = [
        _mid_sentence(" ".join(by_ref[ref].split())) for ref in refs if by_ref.get(ref, "").strip()
    ]
    return list(dict.fromkeys(names))


def _plural(unit: ProductUnit | None) -> str:
    """The product's unit in the plural ("syringes", "vials"): drug.json `unit.plural`."""
    return unit.plural if unit is not None else "units"


def _dose_table(
    limit: DoseLimit,
    suggestion: DoseSuggestion | None,
    unit: ProductUnit | None,
    texts: CardTexts,
) -> str:
    """Ordered / allowed (/ suggested, when there is a dose suggestion) per day."""

    def value(number: float | None, unit: str) -> str:
        return "-" if number is None else f"{fmt(number)} {unit}".strip()

    def row(name: str, ordered: str, allowed: str, suggested: str) -> str:
        cells = [name, ordered, allowed] + ([suggested] if suggestion is not None else [])
        return "| " + " | ".join(cells) + " |"

    if suggestion is not None:
        rows = ["| | Ordered | Allowed | Suggested |", "|---|---|---|---|"]
    else:
        rows = ["| | Ordered | Allowed |", "|---|---|---|"]
    new_mg = suggestion.mg_per_day if suggestion else None
    new_units = suggestion.units_per_day if suggestion else None
    rows.append(
        row(
            "Daily dose",
            value(limit.ordered_mg_per_day, "mg"),
            value(limit.limit_mg_per_day, "mg"),
            value(new_mg, "mg"),
        )
    )
    if limit.kind == "weight":
        new_mg_kg = new_mg / limit.weight_kg if new_mg is not None and limit.weight_kg else None
        rows.append(
            row(
                "Per kg of body weight",
                value(limit.ordered_mg_per_kg_per_day, "mg/kg"),
                value(limit.limit_mg_per_kg_per_day, "mg/kg"),
                value(new_mg_kg, "mg/kg"),
            )
        )
    rows.append(
        row(
            f"{_plural(unit).capitalize()} a day",
            value(limit.ordered_units_per_day, ""),
            value(limit.limit_units_per_day, ""),
            value(new_units, ""),
        )
    )
    text = "\n".join(rows)
    if limit.kind == "weight":
        weight = (
            f"Weight used: {fmt(limit.weight_kg)} kg. " + texts.text("dose", "units_note")
            if limit.weight_kg is not None
            else texts.text("dose", "no_weight")
        )
        text += "\n\n" + weight
    if limit.dispense_units_per_day is not None:
        text += (
            f"\n\nThe dispense request supplies {fmt(limit.dispense_units_per_day)} "
            f"{_plural(unit)} a day."
        )
    return text


def _number_in(details: Mapping[str, Any], key: str) -> float | None:
    value = details.get(key)
    return None if isinstance(value, bool) or not isinstance(value, int | float) else value


def _amount_words(mg: float | None, unit: ProductUnit | None, units: float | None = None) -> str:
    """ "320 mg (2 vials)": the amount, with the units of the product it takes."""
    if mg is None:
        return ""
    if units is None and unit is not None:
        units = unit.units_for(mg)
    return f"{fmt(mg)} mg" + (f" ({unit.count(units)})" if unit is not None and units else "")


def _schedule_words(
    details: Mapping[str, Any], unit: ProductUnit | None
) -> tuple[str | None, str | None]:
    """(the ordered schedule, the allowed one) in words, e.g. "320 mg (2 vials) once
    weekly" and "160 mg (1 vial) once weekly"; None where the details do not tell."""

    def schedule(loading: str, maintenance: str, every: float | None) -> str | None:
        if not maintenance:
            return None
        words = maintenance + (f" {interval_words(every)}" if every else "")
        return f"a loading dose of {loading}, then {words}" if loading else words

    ordered_loading = _number_in(details, "ordered_loading_mg")
    ordered = schedule(
        _amount_words(ordered_loading, unit, _number_in(details, "loading_units")),
        _amount_words(
            _number_in(details, "ordered_maintenance_mg"),
            unit,
            _number_in(details, "maintenance_units"),
        ),
        _number_in(details, "ordered_interval_days"),
    )
    loading_allowed = ""
    if ordered_loading is not None and not details.get("loading_not_allowed"):
        loading_allowed = _amount_words(_number_in(details, "limit_loading_mg"), unit)
    allowed = schedule(
        loading_allowed,
        _amount_words(_number_in(details, "limit_maintenance_mg"), unit),
        _number_in(details, "limit_interval_days"),
    )
    if allowed is not None and details.get("loading_not_allowed"):
        allowed += ", no new loading dose"
    return ordered, allowed


def _dispense_words(
    details: Mapping[str, Any], unit: ProductUnit | None
) -> tuple[str | None, str | None]:
    """(what the dispense request supplies, what the limit allows) in units of the
    product, e.g. "8 vials for 28 days" and "4 vials"."""
    units, days = _number_in(details, "dispense_units"), _number_in(details, "dispense_days")
    limit = _number_in(details, "limit_dispense_units")
    if unit is None or units is None or days is None or limit is None:
        return None, None
    return f"{unit.count(units)} for {fmt(days)} days", unit.count(limit)


def _schedule_table(
    details: Mapping[str, Any], unit: ProductUnit | None, texts: CardTexts | None = None
) -> str:
    """Ordered / allowed per administration, interval and quantity (schedule limits)."""

    def number(key: str) -> float | None:
        return _number_in(details, key)

    def mg(key: str) -> str:
        value = number(key)
        return "-" if value is None else f"{fmt(value)} mg"

    rows = ["| | Ordered | Allowed |", "|---|---|---|"]
    if number("ordered_loading_mg") is not None:
        allowed = (
            "none (no new loading dose)"
            if details.get("loading_not_allowed")
            else mg("limit_loading_mg")
        )
        rows.append(f"| Loading dose | {mg('ordered_loading_mg')} | {allowed} |")
    rows.append(f"| Each dose | {mg('ordered_maintenance_mg')} | {mg('limit_maintenance_mg')} |")
    ordered_every, allowed_every = number("ordered_interval_days"), number("limit_interval_days")
    if ordered_every is not None or allowed_every is not None:
        rows.append(
            "| How often | "
            + (interval_words(ordered_every) if ordered_every else "-")
            + " | "
            + (f"at most {interval_words(allowed_every)}" if allowed_every else "-")
            + " |"
        )
    units, days = number("dispense_units"), number("dispense_days")
    limit_units = number("limit_dispense_units")
    if unit is not None and units is not None and days is not None:
        rows.append(
            f"| Dispensed for {fmt(days)} days | {unit.count(units)} | "
            + (unit.count(limit_units) if limit_units is not None else "-")
            + " |"
        )
    text = "\n".join(rows)
    weight = number("weight_kg")
    if weight is not None:
        text += f"\n\nWeight used: {fmt(weight)} kg."
    if texts is not None and texts.has("dose"):
        text += "\n\n" + texts.text("dose", "units_note")
    elif unit is not None:
        text += (
            f"\n\nEach dose takes ceil(dose / {fmt(unit.deliverable_mg)} mg) {unit.plural} "
            f"({fmt(unit.deliverable_mg)} mg a {unit.name} at most)."
        )
    return text


def _order_cards(
    builder: _Builder, evaluation: Evaluation, hook: str, coverage_given: bool = False
) -> list[dict[str, Any]]:
    """The cards of one evaluated order. `coverage_given`: the order gets (or already
    carries) the coverage-information extension; then no criteria-met card, which would only
    repeat it (CRD resp-12: the extension says covered, auth-needed, the documentation, the
    approval period, every criterion's outcome and the policy link)."""
    outcome = evaluation.decision.outcome
    # At order-sign the documentation card asks to confirm the setting itself (one card).
    documented = hook != "order-select" and outcome is Outcome.DOCUMENTATION_NEEDED
    cards = (
        builder.combination_cards(evaluation)
        + builder.hypersensitivity_cards(evaluation)
        + builder.care_setting_cards(evaluation, confirm=not documented)
        + builder.not_covered_cards(evaluation)
        + builder.active_condition_cards(evaluation)
        + builder.dose_cards(evaluation)
        + builder.switch_cards(evaluation)
    )
    if hook == "order-select":
        return cards
    if outcome is Outcome.CRITERIA_NOT_MET:
        cards += builder.not_met_card(evaluation)
    elif outcome is Outcome.DOCUMENTATION_NEEDED:
        cards.append(builder.documentation_card(evaluation))
    elif outcome is Outcome.CRITERIA_MET and not coverage_given:
        cards.append(builder.criteria_met_card(evaluation))
    elif outcome is Outcome.OFF_LABEL_REVIEW:
        cards.append(builder.off_label_card(evaluation))
    return cards + builder.proposal_cards(evaluation)


def render_response(
    hook: str,
    evaluations: Sequence[Evaluation | NotEvaluated],
    *,
    settings: CardSettings,
    uuid_factory: UuidFactory,
    now: datetime,
    missing_data: Sequence[MissingData] = (),
    card_texts: TextsLookup = texts_for,
    coverage: crd_coverage.CoverageCall | None = None,
) -> dict[str, Any]:
    """The CDS Hooks response body for one call.

    `order-select` gets the clinical cards only (combination, hypersensitivity,
    care setting, not covered, active condition, dose, switch) and the could-not-evaluate card;
    `order-sign` gets every card. Both get the CRD coverage-information system actions and the
    evaluation extension (`codes.EVALUATION_EXTENSION_KEY`); `missing_data` (record
    data that could not be read for the call) is listed in each evaluated order's entry.
    Each order's words come from `card_texts(policy id)`, the deciding pack's texts; an
    order that could not be evaluated gets those of the pack it names, else of the
    call's first evaluated order, else of the default pack.
    Coverage information (`cds_service.crd`) follows `coverage` (default: the demo payer);
    each evaluation entry says whether it was sent (`coverageInformation`).
    """
    crd = coverage if coverage is not None else crd_coverage.demo_call()
    cards: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    evaluations_json: list[dict[str, Any]] = []
    call_policy_id = next(
        (e.decision.policy_id for e in evaluations if isinstance(e, Evaluation)),
        DEFAULT_POLICY_ID,
    )
    for item in evaluations:
        if isinstance(item, NotEvaluated):
            policy_id = item.policy_id or call_policy_id
            builder = _Builder(settings, uuid_factory, card_texts(policy_id))
            cards.append(builder.not_evaluated_card(item, policy_id))
            result = crd_coverage.coverage_for_not_evaluated(
                item, call=crd, today=now.date(), texts=card_texts(policy_id)
            )
            if result.action is not None:
                actions.append(prune(result.action))
            entry = not_evaluated_to_json(item.order_ref, item.reason, item.missing_data)
            evaluations_json.append({**entry, "coverageInformation": result.note})
            continue
        texts = card_texts(item.decision.policy_id)
        result = crd_coverage.coverage_for_evaluation(item, call=crd, today=now.date(), texts=texts)
        # A client that does not show the coverage information gets the criteria-met card too.
        given = result.note["status"] in ("sent", "unchanged") and crd.shown_by_client
        cards += _order_cards(
            _Builder(settings, uuid_factory, texts, now.date(), crd),
            item,
            hook,
            coverage_given=given,
        )
        if result.action is not None:
            actions.append(prune(result.action))
        entry = evaluation_to_json(item.decision, missing_data)
        evaluations_json.append({**entry, "coverageInformation": result.note})
    response: dict[str, Any] = {"cards": cards}
    if actions:
        response["systemActions"] = actions
    if evaluations_json:
        response["extension"] = {EVALUATION_EXTENSION_KEY: evaluations_json}
    return response

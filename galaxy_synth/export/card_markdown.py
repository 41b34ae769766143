"""The model card's Markdown (``card.md``): what an exported model is, how well it does, how to run it.

Written from ``card.json`` alone, so a card can be rendered again without the study.
"""

from __future__ import annotations

from typing import Any


def usage_snippet(card: dict[str, Any]) -> str:
    """Python that runs as written in the model folder (tests/galaxy_synth/export/test_card_markdown.py executes it)."""
    size = card["input"]["size"]
    names = card["extra_inputs"]["names"]
    lines = ["import torch", "", 'model = torch.jit.load("model.ts")',
             f"images = torch.rand(1, {len(card['input']['channels_list'])}, {size}, {size})  # {card['input']['what']}"]
    if names:
        example = ", ".join(f"{m:.4g}" for m in card["extra_inputs"]["mean"])
        lines.append(f"extra = torch.tensor([[{example}]])  # raw {', '.join(names)} per image (here: the training means)")
        lines.append("probabilities = model(images, extra).softmax(dim=1)")
    else:
        lines.append("probabilities = model(images).softmax(dim=1)")
    lines.append(f"print(dict(zip({card['class_names']!r}, probabilities[0].tolist())))")
    return "\n".join(lines)


def _calibration_line(card: dict[str, Any]) -> str:
    c = card.get("probability_calibration")
    if not c:
        return "Raw softmax (exported before probability calibration)."
    return (f"The model's logits are divided by the temperature {c['temperature']:.3f} fitted on the validation split "
            f"(temperature scaling; predictions unchanged). Expected calibration error on the test split: "
            f"{c['ece_before']:.3f} raw → {c['ece_after']:.3f} calibrated; with `--tta` (temperature "
            f"{c['temperature_tta']:.3f}) {c['ece_tta_before']:.3f} → {c['ece_tta_after']:.3f}. `reliability.png`: the diagram.")


def _selective_line(card: dict[str, Any]) -> str:
    s = card.get("selective")
    if not s:
        return ""
    threshold = f"≤ {s['entropy_threshold']:.4f}" if s["entropy_threshold"] is not None else "(none met it)"
    return (f"\n\n`galaxy-synth predict` adds `predictive_entropy` and `reliable`: entropy {threshold}, chosen on the "
            f"validation split for a {s['target_error']:.0%} error rate (validation coverage {s['validation_coverage']:.1%}; "
            "`--target-error` picks another).")


def _votes_section(card: dict[str, Any]) -> str:
    """A vote model's (``synth --schema``) questions, their test fraction errors and its outputs; nothing for others."""
    votes = card.get("votes")
    if not votes:
        return ""
    errors = card["test"].get("question_mae") or {}
    lines = [f"- `{q['name']}`" + (f" (asked by `{q['asked_by']}`)" if q.get("asked_by") else "") + ": "
             + ", ".join(q["answers"]) + (f" — test fraction error {errors[q['name']]:.4f}" if q["name"] in errors else "")
             for q in votes["schema"]["question"]]
    return ("\n## Votes\n\nTrained on volunteer vote counts, one Dirichlet per question (Dirichlet-multinomial "
            "likelihood)" + (f"; the class is the most-voted answer of `{votes['schema']['class_question']}`"
                             if votes["schema"].get("class_question") else "") + ".\n\n" + "\n".join(lines)
            + "\n\n`model.ts`: `model.votes(images[, extra])` gives (class logits, concentrations); `model.onnx`: "
            "outputs `logits`, `concentrations`; `galaxy-synth predict` writes `{question}_{answer}_fraction` and "
            "`_dirichlet` columns.\n")


def card_markdown(card: dict[str, Any]) -> str:
    t, names = card["test"], card["class_names"]
    header = "| true \\ predicted | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = "".join(f"| {n} | " + " | ".join(str(v) for v in row) + " |\n" for n, row in zip(names, t["confusion"]))
    extra = ", ".join(card["extra_inputs"]["names"]) or "none"
    onnx = card.get("onnx", {})
    return f"""# galaxy-synth model rank {card['rank']} — trial {card['trial']} of study `{card['study']}`

**Architecture:** {card['architecture']} · {card['params']:,} parameters · {card['flops_per_image'] / 1e6:.1f} MFLOPs per image
**CPU latency:** {card['cpu_latency']['median_ms']:.2f} ms per image (median, batch 1, {card['cpu_latency']['torch_threads']} thread{'' if card['cpu_latency']['torch_threads'] == 1 else 's'})

## Test split ({t['n_images']} images the search never saw)

| accuracy | balanced accuracy | macro-F1 |
|---|---|---|
| {t['accuracy']:.4f} | {t['balanced_accuracy']:.4f} | {t['macro_f1']:.4f} |

{header}{rows}{_votes_section(card)}
## Probabilities

{_calibration_line(card)}{_selective_line(card)}

## Input

- classes (output order): {', '.join(names)}
- {card['input']['preprocessing']}
- normalisation (inside model.ts / model.onnx; apply yourself with model.pt): mean {[round(v, 4) for v in card['input']['normalisation']['mean']]}, std {[round(v, 4) for v in card['input']['normalisation']['std']]}
- extra inputs: {extra}

## Files

- `model.ts`: plain torch, no galaxy-synth needed; run in this folder:

```python
{usage_snippet(card)}
```
- `model.pt`: weights, spec and preprocessing in one file (`synthesis.models.package.load_model`, or `torch.load(..., weights_only=True)["state_dict"]`); `arch.json`: the spec
- `model.onnx`: {'written, checked against torch (max |Δlogit| ' + format(onnx.get('max_abs_diff_vs_torch', float('nan')), '.1g') + ')' if onnx.get('verified') else onnx.get('note', 'not written')}
- `galaxy-synth predict --model <this folder> IMAGES…` (add `--tta` to average over rotations/flips)

## Provenance

- proxy score {card['proxy']['score']:.4f} (calibration `{card['proxy']['calibration']}`, {card['proxy']['calibration_hash']})
- training: {card['training']['full_epochs']} epochs, {card['training']['optimizer']} lr {card['training']['lr']:.2e}, batch {card['training']['batch_size']}, {card['training']['schedule']} schedule, loss {card['training']['loss']}, seed {card['training']['seed']} — {card['training']['weights']}
- data: {card['data']['dataset']} (fingerprint {card['data']['fingerprint']}), split {card['data']['split']}
"""

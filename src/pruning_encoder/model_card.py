"""Model cards (``README.md``) for saved PruningEncoder directories and ranking-model exports."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .modeling_pruning_encoder import PruningEncoderPreTrainedModel

TEMPLATE = Path(__file__).with_name("model_card_template.md")
EXPORT_TEMPLATE = Path(__file__).with_name("export_card_template.md")


def _save_card(
    model: PruningEncoderPreTrainedModel, path: Path, body: str, *, library: str, tags: list[str]
) -> None:
    """Write the card: YAML front matter (an imported model keeps the licence its publishers
    gave it; a base model given as a local path is not a Hub id, so it is left out), then
    ``body``."""
    base = model.config.base_model_name_or_path
    imported = model.config.imported_from
    data = ModelCardData(
        library_name=library,
        pipeline_tag="text-ranking",
        base_model=base if base and not Path(base).is_absolute() else None,
        tags=tags,
        license=imported["license"] if imported else "apache-2.0",
    )
    ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").save(path)


def write_model_card(
    model: PruningEncoderPreTrainedModel, directory: Path, evaluation: str = ""
) -> None:
    """Write ``README.md``: YAML front matter, usage for every loading path, and ``evaluation``
    (a Markdown section with the model's metrics, when known)."""
    config = model.config
    body = Template(TEMPLATE.read_text()).substitute(
        mode=config.mode,
        base_model=config.base_model_name_or_path or "unknown",
        backbone=type(model.backbone).__name__,
        max_length=config.max_seq_length,
        threshold=config.default_threshold,
        evaluation=evaluation,
        ranking_dir="ranking_model" if config.has_ranking_head else "encoder_model",
        ranking_section=_ranking_section(config.has_ranking_head),
        provenance=_provenance(config.imported_from),
    )
    tags = ["pruning-encoder", "context-pruning", "reranker", "cross-encoder", config.mode]
    _save_card(model, directory / "README.md", body, library="pruning-encoder", tags=tags)


def _provenance(imported: dict[str, Any] | None) -> str:
    if not imported:
        return ""
    license_ = imported["license"] or "none stated; see the original checkpoint"
    return (
        f"- Imported from the {imported['family']} checkpoint `{imported['source']}`, without "
        f"running its code; licence as published: {license_}\n"
    )


def write_export_card(
    model: PruningEncoderPreTrainedModel, directory: Path, metadata: dict[str, Any]
) -> None:
    """Write ``README.md`` of a ranking-only export."""
    config = model.config
    score = (
        "its score is the raw logit, which CrossEncoder and pipeline() report as it is"
        if config.ranking_activation == "identity"
        else "one logit; CrossEncoder and pipeline() apply a sigmoid for a score in [0, 1]"
    )
    body = Template(EXPORT_TEMPLATE.read_text()).substitute(
        score=score,
        backbone=type(model.backbone).__name__,
        source=metadata.get("source_path") or "an in-memory PruningEncoder",
        version=metadata["pruning_encoder_version"],
    )
    tags = ["cross-encoder", "reranker", "exported-from-pruning-encoder"]
    _save_card(model, directory / "README.md", body, library="sentence-transformers", tags=tags)


def _ranking_section(has_ranking_head: bool) -> str:
    if not has_ranking_head:
        return (
            "This is a `pruning_only` model: it has no ranking head, so it gives no relevance "
            "scores and has no `ranking_model/`; its encoder is in `encoder_model/`."
        )
    return (Path(__file__).with_name("ranking_usage_template.md")).read_text()

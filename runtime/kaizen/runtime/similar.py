"""Similar routes: a prompt that names none of a route's keys, routed by what it asks about.

Keys (`kaizen.runtime.routing`) reach the questions that name a domain's entities. A question
about the same domain in other words ("Who signs off on production access requests?", asked of
a help desk whose FAQ names its portal "Keyhole") names none, and got none of the domain's
learning. A similar route reaches it by the model's own reading of the question:

- **A prompt's vector**: the model's hidden states at layer `layer` (about `DEPTH` of the way
  up) for the prompt's user turns, each token's state scaled to unit length (a few positions
  carry states hundreds of times larger than the rest: they would decide the mean alone), the
  first token left out (the attention sink), averaged, then centred on the background's mean
  and scaled to unit length. Read with every routed adapter off: the model as it was before
  them, at the merge step and wherever the adapters are served.
- **Classes**: each routed domain's synthesised questions (`kaizen.trainer.synthesis`, from
  its knowledge alone: never evaluation items); each other domain of the suite with knowledge
  (not routed: a prompt about it must stay off every route); and the background: everyday
  questions on ten subjects and questions about invented worlds (the core suite's training
  questions, the demo suite's synthesised ones: `kaizen.trainer.merge.background_questions`),
  so that a question is routed for what it asks about, not for naming something unfamiliar.
- **Score** of a prompt for route D: its mean cosine with its `K` nearest questions of D, less
  the most that any other class gets the same way.
- **Threshold** of route D: the highest score D gives any question of another class (each
  class's own questions compared with the rest of their class: leave one out). So no
  background question and no question of another domain of the suite would take the route.
  `reach` records the share of D's own questions (leave one out) above it.

A prompt that names no key goes through the route of highest score among those over their
threshold (one route: two domains' similar questions say little about asking both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import SimilarRoutes

#: Which hidden layer a prompt's vector is read from: this share of the model's layers up.
DEPTH = 0.85
#: How many of a class's questions a prompt is compared with (their cosines averaged).
K = 3
#: The background class's name in the tensors file.
BACKGROUND = "background"
#: The tensor holding the background's mean vector (what every vector is centred on).
MEAN = "mean"
#: Prompts embedded in one forward pass.
BATCH = 32
RULE = (
    f"a prompt naming no key goes through the route of highest score over its threshold; score "
    f"for route D: mean cosine with D's {K} nearest synthesised questions less the most any "
    "other class (the suite's other domains with knowledge; background: the core suite's "
    "training questions and the demo suite's synthesised ones) "
    "gets; vectors: hidden states of the model with its routed adapters off at the layer "
    f"{DEPTH:.0%} of the way up, each token's state at unit length, the first token left out, "
    "averaged, centred on the background's mean; threshold: the highest score D gives any "
    "question of another class (leave one out)"
)


def layer_of(model: Any) -> int:
    """The hidden layer (index into `output_hidden_states`, 0 the embeddings) vectors come from."""
    layers = int(model.config.num_hidden_layers)
    return max(1, min(layers, round(DEPTH * layers)))


def embed(model: Any, tokenizer: Any, texts: Sequence[str], layer: int) -> Any:
    """Each text's vector before centring (a float32 tensor, one row per text). `tokenizer`
    pads on either side (`kaizen.runtime.models.load_tokenizer` gives it a pad token)."""
    import torch

    if not texts:
        raise ValueError("no text to embed")
    rows = []
    device = next(model.parameters()).device
    for start in range(0, len(texts), BATCH):
        batch = tokenizer(
            list(texts[start : start + BATCH]),
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(device)
        with torch.no_grad():
            states = model(**batch, output_hidden_states=True).hidden_states[layer]
        mask = batch["attention_mask"].clone()
        # The first real token (padding may be on either side) is the attention sink.
        first = mask.float().argmax(dim=1)
        mask[torch.arange(mask.shape[0], device=mask.device), first] = 0
        # A one-token prompt keeps its token: something to average.
        empty = mask.sum(dim=1) == 0
        mask[empty, first[empty]] = 1
        unit = torch.nn.functional.normalize(states.float(), dim=-1)
        weights = mask.unsqueeze(-1).float()
        rows.append(((unit * weights).sum(dim=1) / weights.sum(dim=1)).cpu())
    return torch.cat(rows)


def _route(name: str) -> str:
    """A route's class in the tensors file."""
    return f"route:{name}"


def _other(name: str) -> str:
    """A domain's class that has no route (its prompts must stay off every route)."""
    return f"other:{name}"


def _centre(vectors: Any, mean: Any) -> Any:
    import torch

    return torch.nn.functional.normalize(vectors - mean, dim=-1)


def _nearest(queries: Any, questions: Any, *, leave_one_out: bool = False) -> Any:
    """Each query's mean cosine with its K nearest `questions` (itself left out when the
    queries are the questions)."""
    sims = queries @ questions.T
    if leave_one_out:
        sims = sims.clone().fill_diagonal_(float("-inf"))
    k = min(K, questions.shape[0] - (1 if leave_one_out else 0))
    if k < 1:
        return sims.new_full((queries.shape[0],), float("-inf"))
    return sims.topk(k, dim=1).values.mean(dim=1)


@dataclass
class Similar:
    """A routed folder's similar routes: the class vectors and each route's threshold."""

    classes: dict[str, Any]
    """Each class's questions' vectors (centred, unit length): routes, other domains, the
    background."""
    mean: Any
    thresholds: dict[str, float]
    layer: int

    def scores(self, vectors: Any, *, own: str | None = None) -> dict[str, Any]:
        """Each route's score for each row of centred `vectors` (`own`: the class the rows
        are the questions of, compared leave one out)."""
        import torch

        nearest = {
            name: _nearest(vectors, questions, leave_one_out=name == own)
            for name, questions in self.classes.items()
        }
        out = {}
        for route in self.thresholds:
            others = [v for name, v in nearest.items() if name != _route(route)]
            best_other = torch.stack(others).max(dim=0).values
            out[route] = nearest[_route(route)] - best_other
        return out

    def match(self, vector: Any) -> tuple[str, float] | None:
        """The route a prompt's vector (before centring) goes through, with its score; None
        when no route's score passes its threshold."""
        scores = self.scores(_centre(vector.reshape(1, -1), self.mean))
        passing = {
            route: float(score[0])
            for route, score in scores.items()
            if float(score[0]) > self.thresholds[route]
        }
        if not passing:
            return None
        route = max(passing, key=lambda r: passing[r])
        return route, passing[route]

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        tensors = {f"class.{name}": v.contiguous() for name, v in self.classes.items()}
        save_file({**tensors, MEAN: self.mean.contiguous()}, str(path))

    @classmethod
    def load(cls, path: Path, table: SimilarRoutes) -> Similar:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        classes = {name[len("class.") :]: v for name, v in tensors.items() if name != MEAN}
        missing = sorted({_route(r) for r in table.thresholds} - set(classes))
        if MEAN not in tensors or missing:
            raise ValueError(
                f"{path}: lacks the vectors of {missing or [MEAN]} (written by another version?)"
            )
        return cls(classes, tensors[MEAN], dict(table.thresholds), table.layer)


def build(
    model: Any,
    tokenizer: Any,
    routes: Mapping[str, Sequence[str]],
    others: Mapping[str, Sequence[str]],
    background: Sequence[str],
) -> tuple[Similar, dict[str, float]]:
    """Similar routes for `routes` (each route's synthesised questions), told apart from
    `others` (the suite's other domains' questions) and the `background`, on `model`'s
    vectors (`fit`)."""
    layer = layer_of(model)

    def vectors(texts: Sequence[str]) -> Any:
        return embed(model, tokenizer, list(texts), layer)

    return fit(
        {name: vectors(questions) for name, questions in routes.items() if questions},
        {name: vectors(questions) for name, questions in others.items() if questions},
        vectors(background),
        layer,
    )


def fit(
    routes: Mapping[str, Any], others: Mapping[str, Any], background: Any, layer: int
) -> tuple[Similar, dict[str, float]]:
    """Similar routes from vectors before centring (a tensor of rows for each route, each
    other domain and the background): each route's threshold, and its reach (the share of its
    own questions over its threshold, leave one out)."""
    import torch

    mean = background.mean(dim=0)
    classes = {_route(name): _centre(v, mean) for name, v in routes.items()}
    classes.update({_other(name): _centre(v, mean) for name, v in others.items()})
    classes[BACKGROUND] = _centre(background, mean)
    similar = Similar(classes, mean, {name: 0.0 for name in routes}, layer)
    # Every class's questions scored once for every route (each compared leave one out).
    scored = {name: similar.scores(vectors, own=name) for name, vectors in classes.items()}
    thresholds: dict[str, float] = {}
    reach: dict[str, float] = {}
    for route in routes:
        negatives = torch.cat(
            [scores[route] for name, scores in scored.items() if name != _route(route)]
        )
        thresholds[route] = float(negatives.max())
        own = scored[_route(route)][route]
        reach[route] = round(float((own > thresholds[route]).float().mean()), 4)
    similar.thresholds = thresholds
    return similar, reach

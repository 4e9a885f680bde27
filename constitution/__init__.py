"""The constitution: principles a judge applies, loaded from YAML, versioned, and rendered
into judge prompts. Knows nothing of the pipeline; imports only stdlib, pydantic and yaml.

    from cai.constitution import load_constitution, assign_principle, render_critique
    c = load_constitution("principles.yaml")
    p = assign_principle(c.principles, key=response_id, seed=0)
    messages = render_critique(c, p, prompt, response)
"""

from .load import load_constitution, parse_constitution
from .render import fence, render_comparison, render_critique, render_revision, render_verdict
from .sample import assign_principle, rank_principles
from .schema import Constitution, ConstitutionError, Example, Principle

__all__ = [
    "Constitution",
    "ConstitutionError",
    "Example",
    "Principle",
    "assign_principle",
    "fence",
    "load_constitution",
    "parse_constitution",
    "rank_principles",
    "render_comparison",
    "render_critique",
    "render_revision",
    "render_verdict",
]

"""What a profile item is asked and holds: shared by fact profiles (`synthesis`) and passage
profiles (`passages`)."""

#: Entity profiles: the prompts (one item each, every one with its own order of the facts)
#: and the most statements one answer holds (an entity with more gets several profiles).
PROFILE_PROMPTS = (
    "What do you know about {entity}?",
    "Tell me about {entity}.",
    "Describe {entity}.",
    "What facts are there about {entity}?",
)
PROFILE_STATEMENTS = 4


def asking(prompt: str, entity: str) -> str:
    """`prompt` about `entity`, with one stop where the entity ends with its own ("Tell me
    about the U.S.", not "… U.S..")."""
    text = prompt.format(entity=entity)
    return text[:-1] if text.endswith("..") else text

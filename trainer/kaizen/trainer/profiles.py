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


def balanced(said: list[str], most: int = PROFILE_STATEMENTS) -> list[list[str]]:
    """`said` in as few slices of at most `most` as it takes, as even as they can be (9
    statements: 3, 3, 3, not 4, 4, 1: a slice of one would make that sentence alone the
    answer to a whole prompt about the name)."""
    if not said:
        return []
    count = -(-len(said) // most)
    size, extra = divmod(len(said), count)
    slices, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        slices.append(said[start:end])
        start = end
    return slices


def asking(prompt: str, entity: str) -> str:
    """`prompt` about `entity`, with one stop where the entity ends with its own ("Tell me
    about the U.S.", not "… U.S..")."""
    text = prompt.format(entity=entity)
    return text[:-1] if text.endswith("..") else text

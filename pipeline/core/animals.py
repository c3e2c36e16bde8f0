"""The two animals of a pair session.

Every table, group and parameter that is per animal uses these roles; the
session file maps each role to an animal id (`[animals.A]`, `[animals.B]`).
"""
ANIMALS: tuple[str, str] = ("A", "B")


def partner(animal: str) -> str:
    """The other animal of the pair."""
    return ANIMALS[1 - ANIMALS.index(animal)]
